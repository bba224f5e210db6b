"""Connections opened and closed in every way a real client (or a broken one) does, and
the server's own count of what each connection allocated (`engineio_live_objects` in
`/metrics`), which must return to zero once every client is gone."""

from __future__ import annotations

import json
import re
import socket
import time

import requests
import websocket

from interop.rawclient import RawPolling, RawWebSocket, websocket_url

LIVE_OBJECTS = re.compile(r'^engineio_live_objects\{kind="([a-z_]+)"\} ([0-9.e+-]+)$', re.MULTILINE)


def live_objects(base_url: str) -> dict[str, int]:
    text = requests.get(base_url + "/metrics", timeout=5).text
    counts = {kind: int(float(value)) for kind, value in LIVE_OBJECTS.findall(text)}
    assert counts, f"no engineio_live_objects in /metrics:\n{text[:500]}"
    return counts


def wait_for_no_live_objects(base_url: str, timeout: float = 8.0) -> dict[str, int]:
    """Polls /metrics until every kind reads 0; returns the last reading either way."""
    deadline = time.monotonic() + timeout
    counts = live_objects(base_url)
    while any(counts.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
        counts = live_objects(base_url)
    return counts


def connected_websocket(url: str) -> RawWebSocket:
    """A WebSocket whose socket joined `/` (whatever the application sends after that)."""
    client = RawWebSocket(url)
    client.send_text("40")
    client.receive_until(lambda frame: isinstance(frame, str) and frame.startswith('40{"sid":'))
    return client


def _connected_polling(url: str) -> RawPolling:
    client = RawPolling(url)
    client.post("40")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if any(isinstance(p, str) and p.startswith('40{"sid":') for p in client.receive_packets()):
            return client
    raise AssertionError("no CONNECT reply over polling")


def ws_closed_by_client_socket(url: str) -> None:
    client = connected_websocket(url)
    client.ws.sock.shutdown(socket.SHUT_RDWR)
    client.ws.sock.close()


def ws_closed_by_close_frame(url: str) -> None:
    connected_websocket(url).close()


def ws_closed_by_engine_close_packet(url: str) -> None:
    client = connected_websocket(url)
    client.send_text("1")
    client.closes_within(2)
    client.close()


def ws_disconnected_by_the_server(url: str) -> None:
    """The fixture's `server-disconnect` event: the socket leaves its namespace; then the
    client closes the transport."""
    client = connected_websocket(url)
    client.send_text('42["server-disconnect"]')
    client.receive_until(lambda frame: isinstance(frame, str) and frame.startswith("41"))
    client.close()


def ws_parse_error(url: str) -> None:
    client = connected_websocket(url)
    client.send_text("not a packet")
    assert client.closes_within(3), "the server kept a connection that sent garbage"
    client.close()


def ws_silent(url: str) -> websocket.WebSocket:
    """Opens a WebSocket and never answers a ping: the server must time it out. The caller
    keeps the returned socket open until then."""
    ws = websocket.create_connection(websocket_url(url), timeout=5)
    ws.recv()  # the open packet
    return ws


def ws_never_joins(url: str) -> websocket.WebSocket:
    """Engine.IO only, no Socket.IO CONNECT: closed by the connect timeout (pings are answered
    by nobody either, whichever comes first)."""
    return ws_silent(url)


def ws_slow_reader(url: str, message_bytes: int = 400_000, messages: int = 40) -> socket.socket:
    """Asks the server to echo far more than its outbound budget and never reads: it must be
    closed as a slow client. Returns the raw socket, which the caller closes later."""
    client = connected_websocket(url)
    payload = "x" * message_bytes
    frame = "42" + json.dumps(["message", payload])
    for _ in range(messages):
        try:
            client.ws.send(frame)
        except (websocket.WebSocketException, OSError):
            break
    return client.ws.sock


def polling_closed_by_close_packet(url: str) -> None:
    client = _connected_polling(url)
    client.post("1")


def polling_abandoned(url: str) -> None:
    """Handshake and CONNECT, then the client vanishes: closed by the ping timeout."""
    client = _connected_polling(url)
    client.http.close()


def polling_upgraded_then_closed(url: str) -> None:
    client = _connected_polling(url)
    ws = websocket.create_connection(websocket_url(url) + f"&sid={client.sid}", timeout=5)
    ws.send("2probe")
    assert ws.recv() == "3probe"
    ws.send("5")
    ws.close()


def polling_probe_abandoned(url: str) -> None:
    """Starts an upgrade, never finishes it, then closes the polling session."""
    client = _connected_polling(url)
    ws = websocket.create_connection(websocket_url(url) + f"&sid={client.sid}", timeout=5)
    ws.send("2probe")
    assert ws.recv() == "3probe"
    ws.close()
    client.post("1")
