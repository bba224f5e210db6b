"""Every protocol violation of SERVER-CONTRACT 5.11 closes that client's connection.

The client keeps answering pings the whole time, so the only reason left for the server
to close is the violation itself. A control case sends valid packets the same way and
must stay open. Other clients are unaffected and new ones are still accepted.
"""

from __future__ import annotations

import pytest

from interop.rawclient import RawPolling, RawWebSocket

CLOSE_DEADLINE_SECONDS = 2.0
# Long enough to see several 300 ms ping cycles: a wrongly closed control shows up.
STAY_OPEN_SECONDS = 1.5

PLACEHOLDER_0 = '{"_placeholder":true,"num":0}'

# name -> packets sent after a successful CONNECT to "/". str = text packet, bytes = binary.
VIOLATIONS: dict[str, list] = {
    "packet type a": ["4abc"],
    "packet type 9": ['49["message"]'],
    "invalid json": ['42["message",1'],
    "ack id not digits": ['42abc["message"]'],
    "negative ack id": ['42-1["message"]'],
    "event payload object": ["42{}"],
    "event payload empty array": ["42[]"],
    "event name not string": ['42[{"a":1}]'],
    "event name null": ["42[null]"],
    "reserved connect": ['42["connect"]'],
    "reserved connect_error": ['42["connect_error"]'],
    "reserved disconnect": ['42["disconnect"]'],
    "reserved disconnecting": ['42["disconnecting"]'],
    "reserved newListener": ['42["newListener"]'],
    "reserved removeListener": ['42["removeListener"]'],
    "connect data string": ['40/custom,"token"'],
    "connect data array": ['40/custom,[1,2]'],
    # Not `40/custom,42`: socket.io-parser reads those digits as an ack id, leaving no data.
    "connect data boolean": ["40/custom,true"],
    "connect data null": ["40/custom,null"],
    "disconnect with data": ['41{"reason":"x"}'],
    "attachments not a number": ['45x-["message",' + PLACEHOLDER_0 + "]"],
    "attachments negative": ['45-1-["message",' + PLACEHOLDER_0 + "]"],
    "attachments over limit": ['4511-["message",' + PLACEHOLDER_0 + "]"],
    "attachments absurd": ['4599999999999999999999-["message",' + PLACEHOLDER_0 + "]"],
    "attachments without dash": ['451["message",' + PLACEHOLDER_0 + "]"],
    "binary ack attachments absurd": ["4699999999999999999999-1[" + PLACEHOLDER_0 + "]"],
    "placeholder num out of range": ['451-["message",{"_placeholder":true,"num":5}]', b"\x01\x02"],
    "binary frame with nothing pending": [b"\x01\x02\x03"],
    "text while attachments pending": ['451-["message",' + PLACEHOLDER_0 + "]", '42["message"]'],
    "event to unjoined namespace": ['42/custom,["message"]'],
    "event to unknown namespace": ['42/nope,["message"]'],
    "ack to unjoined namespace": ["43/custom,0[]"],
}

VALID_CONTROL = [
    '42["message",1]',
    '420["message-with-ack",{"b":1}]',
    '451-["message",' + PLACEHOLDER_0 + "]",
    b"\x00\xff",
    "41/custom,",  # leaving a joined namespace is fine; the tests join /custom first
]


def _websocket_session(url: str) -> RawWebSocket:
    client = RawWebSocket(url)
    client.connect_namespace("/")
    return client


def _send_websocket(client: RawWebSocket, packets: list) -> None:
    for packet in packets:
        if isinstance(packet, bytes):
            client.send_binary(packet)
        else:
            client.send_text(packet)


@pytest.mark.parametrize("name", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_violation_closes_websocket(sio_url, name):
    client = _websocket_session(sio_url)
    try:
        _send_websocket(client, VIOLATIONS[name])
        assert client.closes_within(CLOSE_DEADLINE_SECONDS), f"server kept the connection after {name!r}"
    finally:
        client.close()
    _assert_server_still_serves(sio_url)


@pytest.mark.parametrize("name", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_violation_closes_polling_session(sio_url, name):
    client = RawPolling(sio_url)
    client.connect_namespace("/")
    client.post_packets(VIOLATIONS[name])  # may itself be refused: that is a close too
    assert client.closes_within(CLOSE_DEADLINE_SECONDS), f"server kept the session after {name!r}"
    # Once closed it stays closed.
    assert client.get().status_code == 400
    _assert_server_still_serves(sio_url)


def test_valid_packets_keep_websocket_open(sio_url):
    client = _websocket_session(sio_url)
    try:
        client.connect_namespace("/custom")
        _send_websocket(client, VALID_CONTROL)
        assert client.stays_open_for(STAY_OPEN_SECONDS)
        client.send_text('42["message-with-ack"]')
        client.send_text('4299["message-with-ack","still"]')
        assert client.receive_until(lambda frame: isinstance(frame, str) and frame.startswith("4399")) == '4399["still"]'
    finally:
        client.close()


def test_valid_packets_keep_polling_open(sio_url):
    client = RawPolling(sio_url)
    client.connect_namespace("/")
    client.connect_namespace("/custom")
    assert client.post_packets(VALID_CONTROL).status_code == 200
    assert client.stays_open_for(STAY_OPEN_SECONDS)
    client.post('4217["message-with-ack","still"]')
    received = []
    for _ in range(10):
        received += client.receive_packets()
        if '4317["still"]' in received:
            break
    assert '4317["still"]' in received


def test_violation_leaves_other_clients_alone(sio_url):
    bystander = _websocket_session(sio_url)
    offender = _websocket_session(sio_url)
    try:
        offender.send_text('42["message",1')
        assert offender.closes_within(CLOSE_DEADLINE_SECONDS)
        bystander.send_text('421["message-with-ack","fine"]')
        assert bystander.receive() == '431["fine"]'
    finally:
        bystander.close()
        offender.close()


def _assert_server_still_serves(url: str) -> None:
    client = RawWebSocket(url)
    try:
        client.connect_namespace("/")
        client.send_text('427["message-with-ack","alive"]')
        assert client.receive() == '437["alive"]'
    finally:
        client.close()
