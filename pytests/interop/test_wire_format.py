"""Exact wire strings (SERVER-CONTRACT sections 1, 4 and 5) seen through raw sockets.

The python-socketio client tolerates small deviations that other clients do not; these
tests compare frames byte for byte.
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from interop.rawclient import ClosedByServer, RawPolling, RawWebSocket

OPEN_PACKET_KEYS = ["sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"]


@pytest.fixture
def ws(sio_url):
    client = RawWebSocket(sio_url)
    yield client
    client.close()


def test_open_packet_over_websocket(ws):
    assert sorted(ws.open_packet) == sorted(OPEN_PACKET_KEYS)
    assert ws.open_packet["upgrades"] == []
    assert ws.open_packet["pingInterval"] == 300
    assert ws.open_packet["pingTimeout"] == 200
    assert ws.open_packet["maxPayload"] == 1_000_000


def test_open_packet_and_headers_over_polling(sio_url):
    client = RawPolling(sio_url)
    assert sorted(client.open_packet) == sorted(OPEN_PACKET_KEYS)
    assert client.open_packet["upgrades"] == ["websocket"]
    assert client.response_headers["Content-Type"].replace(" ", "").lower() == "text/plain;charset=utf-8"
    response = client.post("40")
    assert (response.status_code, response.text) == (200, "ok")
    assert RawPolling(sio_url).sid != client.sid


def test_connect_reply_then_auth_event(ws):
    ws.send_text('40{"b":1,"a":{"z":true,"y":null}}')
    reply = ws.receive()
    assert reply.startswith('40{"sid":"')
    assert list(json.loads(reply[2:])) == ["sid"]
    assert json.loads(reply[2:])["sid"] != ws.sid
    assert ws.receive() == '42["auth",{"b":1,"a":{"z":true,"y":null}}]'


def test_connect_without_payload_gets_empty_auth(ws):
    ws.send_text("40/custom,")
    assert ws.receive().startswith('40/custom,{"sid":"')
    assert ws.receive() == '42/custom,["auth",{}]'


def test_unknown_namespace_is_refused_and_connection_stays(ws):
    ws.send_text("40/nope,")
    assert ws.receive() == '44/nope,{"message":"Invalid namespace"}'
    ws.connect_namespace("/")
    ws.send_text('421["message-with-ack","ok"]')
    assert ws.receive() == '431["ok"]'


def test_private_namespace_bad_token_exact_error_and_connection_stays(ws):
    ws.send_text('40/private,{"token":"nope"}')
    assert ws.receive() == '44/private,{"message":"not authorized","data":{"reason":"invalid token"}}'
    ws.connect_namespace("/private", auth={"token": "secret"})
    ws.send_text('42/private,5["whoami"]')
    reply = ws.receive()
    assert reply.startswith("43/private,5[") and json.loads(reply[len("43/private,5"):])[0]["nsp"] == "/private"


def test_echo_keeps_key_order_big_integers_and_slashes(ws):
    ws.connect_namespace("/")
    ws.send_text('421["message-with-ack",{"b":1,"a":2},9007199254740991,-9007199254740991,"a/b",[]]')
    assert ws.receive() == '431[{"b":1,"a":2},9007199254740991,-9007199254740991,"a/b",[]]'


@pytest.mark.parametrize("ack_id", ["0", "123456789"])
def test_ack_ids_zero_and_large(ws, ack_id):
    ws.connect_namespace("/")
    ws.send_text(f'42{ack_id}["message-with-ack"]')
    assert ws.receive() == f"43{ack_id}[]"


def test_binary_event_and_binary_ack_exact(ws):
    ws.connect_namespace("/")
    ws.send_text('451-["message",{"_placeholder":true,"num":0}]')
    ws.send_binary(b"\x01\x02\x03")
    assert ws.receive() == '451-["message-back",{"_placeholder":true,"num":0}]'
    assert ws.receive() == b"\x01\x02\x03"

    ws.send_text('452-9["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    ws.send_binary(b"\xaa")
    ws.send_binary(b"\xbb\xcc")
    assert ws.receive() == '462-9[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert ws.receive() == b"\xaa"
    assert ws.receive() == b"\xbb\xcc"


def test_binary_over_polling_uses_base64_packets(sio_url):
    client = RawPolling(sio_url)
    client.connect_namespace("/")
    client.post_packets(['451-["message",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"])
    received = []
    for _ in range(5):
        received += client.receive_packets()
        if b"\x01\x02\x03\x04" in received:
            break
    assert received == ['451-["message-back",{"_placeholder":true,"num":0}]', b"\x01\x02\x03\x04"]


def test_server_ack_request_and_client_binary_ack(ws):
    ws.connect_namespace("/custom")
    ws.send_text('42/custom,["request-client-ack","x"]')
    request = ws.receive()
    prefix = '42/custom,'
    assert request.startswith(prefix) and request.endswith('["server-ack-request","x"]')
    ack_id = request[len(prefix):request.index("[")]
    assert ack_id.isdigit()
    ws.send_text(f'461-/custom,{ack_id}[{{"_placeholder":true,"num":0}}]')
    ws.send_binary(b"\xff\x00")
    assert ws.receive() == '451-/custom,["client-ack-received",{"_placeholder":true,"num":0}]'
    assert ws.receive() == b"\xff\x00"


def test_server_disconnect_of_one_namespace_exact(ws):
    ws.connect_namespace("/")
    ws.connect_namespace("/custom")
    ws.send_text('42/custom,["server-disconnect"]')
    assert ws.receive() == "41/custom,"
    ws.send_text('421["message-with-ack","still"]')
    assert ws.receive() == '431["still"]'
    # The left namespace can be joined again on the same connection.
    ws.connect_namespace("/custom")


def test_client_disconnect_gets_no_reply_and_next_frame_is_a_ping(ws):
    ws.connect_namespace("/")
    ws.connect_namespace("/custom")
    ws.send_text("41/custom")
    ws.ws.settimeout(2.0)
    opcode, data = ws.ws.recv_data()
    assert data == b"2"
    ws.send_text("3")
    ws.send_text('421["message-with-ack","root still works"]')
    assert ws.receive() == '431["root still works"]'


def test_room_broadcast_exact_frames(sio_url):
    member, outsider = RawWebSocket(sio_url), RawWebSocket(sio_url)
    try:
        member.connect_namespace("/")
        outsider.connect_namespace("/")
        member.send_text('421["join","wire-room"]')
        assert member.receive() == '431["wire-room"]'
        outsider.send_text('422["broadcast","wire-room",{"b":1,"a":2},"x"]')
        assert outsider.receive() == "432[true]"
        assert member.receive() == '42["broadcast",{"b":1,"a":2},"x"]'
    finally:
        member.close()
        outsider.close()


def test_no_connect_within_connect_timeout_closes_even_with_pongs(sio_url):
    client = RawWebSocket(sio_url)
    try:
        started = time.monotonic()
        assert client.stays_open_for(0.7), "closed before connectTimeout (1000 ms)"
        assert client.closes_within(2.0), "no CONNECT for 2.7 s and still open"
        assert time.monotonic() - started < 2.8
    finally:
        client.close()


def test_connected_session_outlives_connect_timeout(ws):
    ws.connect_namespace("/")
    assert ws.stays_open_for(1.6)


def test_oversize_websocket_frame_closes(ws):
    ws.connect_namespace("/")
    ws.send_text("4" + "x" * 1_000_100)
    assert ws.closes_within(2.0)


def test_oversize_polling_post_is_refused(sio_url):
    client = RawPolling(sio_url)
    response = client.post("4" + "x" * 1_000_100)
    assert response.status_code in (400, 413)


def test_http_errors_use_engine_io_codes(sio_url):
    cases = [
        ("/socket.io/?EIO=4&transport=unknown", "GET", 0, "Transport unknown"),
        ("/socket.io/?EIO=4&transport=polling&sid=does-not-exist", "GET", 1, "Session ID unknown"),
        ("/socket.io/?EIO=4&transport=polling", "POST", 2, "Bad handshake method"),
        ("/socket.io/?EIO=3&transport=polling", "GET", 5, "Unsupported protocol version"),
    ]
    for path, method, code, message in cases:
        response = requests.request(method, sio_url + path, timeout=5)
        assert response.status_code == 400, (path, response.status_code)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json() == {"code": code, "message": message}


def test_closed_polling_session_answers_400(sio_url):
    client = RawPolling(sio_url)
    client.connect_namespace("/")
    client.post("1")
    with pytest.raises(ClosedByServer):
        for _ in range(3):
            client.receive_packets(timeout=2)
    assert client.get().status_code == 400
