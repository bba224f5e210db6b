"""Attacks on the HTTP and transport layer, over raw sockets (no client library in the way).

Each test starts its own fixture server with short timeouts or small caps (flags of
sio-conformance), attacks it, and then checks that the refusal really happened, that the
process is alive, that its memory stayed bounded, and that two other clients still exchange
messages through a room. The last test runs the chat (memory adapter) the same way.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests
import websocket

from interop.rawclient import RawWebSocket, websocket_url

ENGINE = "/socket.io/"
HANDSHAKE = ENGINE + "?EIO=4&transport=polling"
WS_HANDSHAKE = ENGINE + "?EIO=4&transport=websocket"
UPGRADE_HEADERS = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
# Fast timeouts so the whole file stays well under a minute.
FAST_TIMEOUTS = ("--headers-timeout", "500", "--keep-alive-timeout", "500", "--request-timeout", "1000")
# Long heartbeats where a test needs connections that do not answer pings to stay open.
LONG_PINGS = ("--ping-interval", "20000", "--ping-timeout", "20000")


# --- helpers -----------------------------------------------------------------------------

def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Reads (and drops) whatever comes until the server closes; False if still open at the end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def raw_request(server, request: str, seconds: float = 3) -> bytes:
    """Sends one raw request and returns everything the server sends until it closes or goes quiet."""
    sock = connect(server)
    sock.sendall(request.encode("latin-1"))
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        received += chunk
        if b"\r\n\r\n" in received and (b"101 Switching" in received or received.count(b"}") >= 1):
            break
    sock.close()
    return received


def upgrade_request(server, extra_headers: str = "", uri: str = WS_HANDSHAKE) -> bytes:
    return raw_request(server, f"GET {uri} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n{UPGRADE_HEADERS}{extra_headers}\r\n")


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def json_body(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1].decode())


class Client(RawWebSocket):
    """RawWebSocket with chosen headers (websocket-client sends `Origin: http://host:port`
    unless told otherwise)."""

    def __init__(self, base_url: str, origin: str | None = None, headers: list[str] | None = None):
        options = {"origin": origin} if origin else {"suppress_origin": True}
        self.ws = websocket.create_connection(websocket_url(base_url), timeout=5, header=headers or [], **options)
        _, data = self.ws.recv_data()
        text = data.decode()
        assert text.startswith("0"), text
        self.open_packet = json.loads(text[1:])
        self.sid = self.open_packet["sid"]


def assert_two_clients_exchange(server, **client_options) -> None:
    """The server is alive and two new clients in one room hear each other."""
    assert server.is_alive(), server.tail()
    alice, bob = Client(server.url, **client_options.get("alice", {})), Client(server.url, **client_options.get("bob", {}))
    try:
        for client in (alice, bob):
            client.connect_namespace("/")
            client.send_text('421["join","hostile-check"]')
            client.receive_until(lambda frame: frame == '431["hostile-check"]')
        alice.send_text('42["broadcast","hostile-check","from alice"]')
        assert bob.receive_until(lambda frame: frame.startswith('42["broadcast"')) == '42["broadcast","from alice"]'
        bob.send_text('42["broadcast","hostile-check","from bob"]')
        assert alice.receive_until(lambda frame: "from bob" in frame) == '42["broadcast","from bob"]'
    finally:
        alice.close()
        bob.close()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    assert len(payload) <= 125
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


# --- timeouts ----------------------------------------------------------------------------

def test_silent_and_slow_header_connections_are_closed(start_sio_server):
    server = start_sio_server("hostile-timeouts", FAST_TIMEOUTS)
    silent = [connect(server) for _ in range(20)]
    slow = [connect(server) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\n")

    stop = threading.Event()

    def trickle():
        # One header line every 100 ms: never a complete head.
        index = 0
        while not stop.is_set():
            for sock in slow:
                try:
                    sock.sendall(f"X-Slow-{index}: y\r\n".encode())
                except OSError:
                    pass
            index += 1
            time.sleep(0.1)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        assert sum(closed_within(sock, 3) for sock in silent) == 20
        assert sum(closed_within(sock, 3) for sock in slow) == 20
    finally:
        stop.set()
        trickler.join()
    for sock in silent + slow:
        sock.close()
    assert_two_clients_exchange(server)


def test_a_body_that_never_arrives_gets_408_and_an_idle_keep_alive_connection_is_closed(start_sio_server):
    server = start_sio_server("hostile-408", FAST_TIMEOUTS)
    sock = connect(server)
    sock.sendall(b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
    sock.settimeout(3)
    assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    assert closed_within(sock, 2)
    sock.close()

    idle = connect(server)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.settimeout(3)
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    assert closed_within(idle, 3)
    assert time.monotonic() - started >= 0.3  # the keep-alive time, not at once
    idle.close()
    assert_two_clients_exchange(server)


# --- memory under requests that are never read ------------------------------------------

def test_pipelined_requests_that_are_never_read_do_not_grow_memory(start_sio_server):
    server = start_sio_server("hostile-pipelining")
    assert_two_clients_exchange(server)  # warm up pools before the baseline
    time.sleep(0.5)
    baseline = server.rss_kib()
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    attackers = []
    for _ in range(20):
        sock = connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        attackers.append(sock)
    burst = request * 10_000
    sent = 0
    deadline = time.monotonic() + 5
    # Up to 100,000 requests per connection, never reading an answer.
    while time.monotonic() < deadline and sent < 10:
        for sock in attackers:
            try:
                sock.send(burst)
            except (BlockingIOError, OSError):
                pass
        sent += 1
    time.sleep(1)
    grown = server.rss_kib() - baseline
    closed = sum(closed_within(sock, 2) for sock in attackers)
    for sock in attackers:
        sock.close()
    print(f"pipelining: rss_baseline_kib={baseline} growth_kib={grown} closed={closed}/20")
    assert closed == 20, "a client with a pipeline of unanswered requests must be closed"
    assert grown < 20 * 1024, f"RSS grew {grown} KiB under unread pipelined requests"
    assert_two_clients_exchange(server)


def test_a_ping_flood_from_clients_that_never_read_does_not_grow_memory(start_sio_server):
    server = start_sio_server("hostile-pings", LONG_PINGS)
    assert_two_clients_exchange(server)
    time.sleep(0.5)
    baseline = server.rss_kib()
    ping = masked_frame(0x9, b"p" * 125)
    burst = ping * 2000
    attackers = []
    for _ in range(5):
        sock = connect(server)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {WS_HANDSHAKE} HTTP/1.1\r\nHost: x\r\n{UPGRADE_HEADERS}\r\n".encode())
        attackers.append(sock)
    time.sleep(0.3)
    flood_closed = [False] * len(attackers)
    deadline = time.monotonic() + 15
    # Up to 5 x 65 MB of pings; each connection must be cut off long before.
    for _ in range(200):
        if all(flood_closed) or time.monotonic() > deadline:
            break
        for index, sock in enumerate(attackers):
            if flood_closed[index]:
                continue
            try:
                sock.settimeout(2)
                sock.sendall(burst)
            except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
                flood_closed[index] = True
    grown = server.rss_kib() - baseline
    for sock in attackers:
        sock.close()
    print(f"ping flood: rss_baseline_kib={baseline} growth_kib={grown} closed={sum(flood_closed)}/5")
    assert all(flood_closed), f"only {sum(flood_closed)} of 5 ping flooders were closed"
    assert grown < 40 * 1024, f"RSS grew {grown} KiB under a ping flood"
    assert_two_clients_exchange(server)


# --- origin ------------------------------------------------------------------------------

def test_a_foreign_origin_gets_403_on_websocket_and_polling_and_no_origin_is_served(start_sio_server):
    server = start_sio_server("hostile-origin", ("--allowed-origins", "https://good.example"))
    evil = {"Origin": "https://evil.example"}

    upgrade = upgrade_request(server, "Origin: https://evil.example\r\n")
    assert status_of(upgrade) == 403, upgrade[:200]
    assert json_body(upgrade) == {"code": 4, "message": "Origin not allowed"}

    handshake = requests.get(server.url + HANDSHAKE, headers=evil, timeout=5)
    assert handshake.status_code == 403
    assert handshake.json() == {"code": 4, "message": "Origin not allowed"}

    # A session opened without Origin cannot be used from a foreign page either.
    served = requests.get(server.url + HANDSHAKE, timeout=5)
    assert served.status_code == 200 and served.text.startswith("0{")
    sid = json.loads(served.text[1:])["sid"]
    post = requests.post(server.url + HANDSHAKE + f"&sid={sid}", data="40", headers=evil, timeout=5)
    assert post.status_code == 403

    assert status_of(upgrade_request(server)) == 101  # no Origin: a non-browser client
    assert status_of(upgrade_request(server, "Origin: https://good.example\r\n")) == 101
    assert requests.get(server.url + HANDSHAKE, headers={"Origin": "https://good.example"}, timeout=5).status_code == 200
    with pytest.raises(websocket.WebSocketBadStatusException):
        Client(server.url, origin="https://evil.example")
    assert_two_clients_exchange(server, alice={"origin": "https://good.example"})


# --- admission ---------------------------------------------------------------------------

def forwarded(address: str) -> dict:
    return {"X-Forwarded-For": address}


def test_per_address_caps_refuse_with_429_and_others_are_served(start_sio_server):
    server = start_sio_server(
        "hostile-admission", ("--max-sessions-per-address", "3", "--trusted-proxies", "127.0.0.1", *LONG_PINGS)
    )
    greedy = forwarded("198.51.100.7")
    for _ in range(3):
        assert requests.get(server.url + HANDSHAKE, headers=greedy, timeout=5).status_code == 200
    refused = requests.get(server.url + HANDSHAKE, headers=greedy, timeout=5)
    assert refused.status_code == 429
    assert refused.json() == {"code": 4, "message": "Too many connections from this address"}
    upgrade = upgrade_request(server, "X-Forwarded-For: 198.51.100.7\r\n")
    assert status_of(upgrade) == 429, upgrade[:200]
    # Other addresses (as the trusted proxy reports them) keep their own allowance.
    assert_two_clients_exchange(
        server, alice={"headers": ["X-Forwarded-For: 198.51.100.8"]}, bob={"headers": ["X-Forwarded-For: 198.51.100.9"]}
    )


def test_the_handshake_rate_per_address_refuses_with_429(start_sio_server):
    server = start_sio_server("hostile-rate", ("--handshake-rate", "1", "--handshake-burst", "5"))
    statuses = [requests.get(server.url + HANDSHAKE, timeout=5).status_code for _ in range(8)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429] * 3
    refused = requests.get(server.url + HANDSHAKE, timeout=5)
    assert refused.headers.get("Retry-After") == "1"
    assert status_of(upgrade_request(server)) == 429
    time.sleep(2.2)  # two tokens back at one per second
    assert_two_clients_exchange(server)


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(start_sio_server):
    # The proxy this node trusts is elsewhere: a client on 127.0.0.1 claiming other
    # addresses is still 127.0.0.1.
    server = start_sio_server(
        "hostile-untrusted", ("--max-sessions-per-address", "2", "--trusted-proxies", "10.0.0.0/8", *LONG_PINGS)
    )
    statuses = [
        requests.get(server.url + HANDSHAKE, headers=forwarded(f"203.0.113.{index}"), timeout=5).status_code
        for index in range(1, 4)
    ]
    assert statuses == [200, 200, 429]
    assert server.is_alive()


# --- the chat ----------------------------------------------------------------------------

def chat_binary():
    from chat.conftest import chat_binary as binary
    return binary()


@pytest.mark.skipif(not chat_binary().exists(), reason="chat not built")
def test_the_chat_serves_its_own_origin_and_refuses_others():
    from chat.conftest import start_chat

    node = start_chat(
        "chat-hostile", "--adapter", "memory", "--allowed-origins", "https://partner.example",
        "--trusted-proxies", "127.0.0.1", "--max-sessions-per-address", "2", *FAST_TIMEOUTS,
    )
    try:
        own = f"http://127.0.0.1:{node.port}"
        assert requests.get(node.url + HANDSHAKE, headers={"Origin": own}, timeout=5).status_code == 200
        assert requests.get(node.url + HANDSHAKE, headers={"Origin": "https://partner.example"}, timeout=5).status_code == 200
        assert requests.get(node.url + HANDSHAKE, headers={"Origin": "https://evil.example"}, timeout=5).status_code == 403
        assert status_of(upgrade_request(node, "Origin: https://evil.example\r\n")) == 403
        # Its own page still loads for anyone; only Engine.IO checks the origin.
        assert requests.get(node.url + "/healthz", headers={"Origin": "https://evil.example"}, timeout=5).status_code == 200
        # Per-address cap by the forwarded address.
        for _ in range(2):
            assert requests.get(node.url + HANDSHAKE, headers=forwarded("198.51.100.70"), timeout=5).status_code == 200
        assert requests.get(node.url + HANDSHAKE, headers=forwarded("198.51.100.70"), timeout=5).status_code == 429
        # A silent connection is closed by the headers timeout.
        silent = connect(node)
        assert closed_within(silent, 3)
        silent.close()
        # Every refusal is counted where the operator looks.
        metrics = requests.get(node.url + "/metrics", timeout=5).text
        for series in ('engineio_admission_refused_total{reason="origin"} 2',
                       'engineio_admission_refused_total{reason="connections_per_address"} 1',
                       'engineio_http_timeouts_total{kind="headers"} 1'):
            assert series in metrics, f"{series} not in /metrics"
        assert node.is_alive(), node.tail()
    finally:
        node.stop()
