"""Churn: many connections opened and closed in every way, on every transport. Once all
clients are gone the server must hold no session, WebSocket handler, Socket.IO client or
socket of any of them (the leak of issue #16 kept all four, forever)."""

from __future__ import annotations

import pytest

from . import churnkit as kit

CLOSES_BY_THE_CLIENT = [
    kit.ws_closed_by_client_socket,
    kit.ws_closed_by_close_frame,
    kit.ws_closed_by_engine_close_packet,
    kit.ws_disconnected_by_the_server,
    kit.ws_parse_error,
    kit.polling_closed_by_close_packet,
    kit.polling_abandoned,
    kit.polling_upgraded_then_closed,
    kit.polling_probe_abandoned,
]


def churn_round(url: str, per_kind: int) -> None:
    # The gauge counts what is open (else a zero at the end would prove nothing).
    probe = kit.connected_websocket(url)
    counts = kit.live_objects(url)
    assert counts["engine_sessions"] >= 1 and counts["socketio_sockets"] >= 1, counts
    probe.close()
    left_open = []
    for _ in range(per_kind):
        for close in CLOSES_BY_THE_CLIENT:
            close(url)
        # Closed by the server's timers while the client holds the socket.
        left_open.append(kit.ws_silent(url))
        left_open.append(kit.ws_never_joins(url))
    left_open.append(kit.ws_slow_reader(url))
    # Heartbeats (300 ms + 200 ms), the connect timeout (1 s), and the slow client's close.
    kit.wait_for_no_live_objects(url, timeout=3)
    for sock in left_open:
        sock.close()


@pytest.mark.slow
def test_every_close_frees_every_per_connection_object(start_sio_server):
    server = start_sio_server("sio-conformance-churn")
    assert kit.live_objects(server.url) == {
        "engine_sessions": 0, "websocket_handlers": 0, "socketio_clients": 0, "socketio_sockets": 0,
    }
    for _ in range(3):
        churn_round(server.url, per_kind=5)
    remaining = kit.wait_for_no_live_objects(server.url)
    assert remaining == {
        "engine_sessions": 0, "websocket_handlers": 0, "socketio_clients": 0, "socketio_sockets": 0,
    }, f"objects of closed connections are still allocated: {remaining}"
    assert server.is_alive(), server.tail()
