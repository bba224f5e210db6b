"""Churn against the chat itself, on the in-memory adapter and through RabbitMQ: real
python-socketio users (both transports) and raw clients closing in every way. Once they
are all gone the chat must hold none of their sessions, handlers, clients or sockets."""

from __future__ import annotations

import os

import pytest

from chat.conftest import ChatUser, broker_reachable, start_chat, wait_ready

from . import churnkit as kit

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")

RAW_CLOSES = [
    kit.ws_closed_by_client_socket,
    kit.ws_closed_by_close_frame,
    kit.ws_closed_by_engine_close_packet,
    kit.ws_parse_error,
    kit.polling_closed_by_close_packet,
    kit.polling_abandoned,
    kit.polling_upgraded_then_closed,
    kit.polling_probe_abandoned,
]

NO_LIVE_OBJECTS = {"engine_sessions": 0, "websocket_handlers": 0, "socketio_clients": 0, "socketio_sockets": 0}


def churn(node, rounds: int = 3, users_per_round: int = 6) -> None:
    for round_number in range(rounds):
        users = []
        for index in range(users_per_round):
            transports = ["websocket"] if index % 2 else ["polling"]
            users.append(ChatUser(node.url, name=f"churn{round_number}x{index}", transports=transports))
        for user in users:
            assert user.send(f"hello from {round_number}")["ok"]
        left_open = [kit.ws_silent(node.url)]
        for close in RAW_CLOSES:
            close(node.url)
        assert kit.live_objects(node.url)["socketio_sockets"] >= users_per_round
        for user in users:
            user.close()
        for sock in left_open:
            sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("adapter", ["memory", "rabbitmq"])
def test_the_chat_frees_every_closed_connection(adapter):
    if adapter == "rabbitmq" and os.environ.get("CI") != "true" and not broker_reachable():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672 (scripts/test starts one; in CI this test must run)")
    node = start_chat(f"chat-churn-{adapter}", "--adapter", adapter, "--rate-limit", "1000", "--rate-burst", "1000",
                      "--ping-interval", "1000", "--ping-timeout", "1000", "--recovery-window", "2",
                      env={"AMQP_URL": AMQP_URL})
    try:
        if adapter == "rabbitmq":
            wait_ready(node)
        churn(node)
        remaining = kit.wait_for_no_live_objects(node.url, timeout=10)
        assert remaining == NO_LIVE_OBJECTS, f"objects of closed connections are still allocated: {remaining}"
        assert node.is_alive(), node.tail()
    finally:
        node.stop()
