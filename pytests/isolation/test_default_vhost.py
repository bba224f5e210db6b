"""Tests never write into the broker's default vhost `/`, which is the chat's own.

After `scripts/test`, a fresh `scripts/cluster` must look like a first run: only #general,
no messages. scripts/test (and pytests/conftest.py for a plain pytest) give the session a
vhost of its own; these tests prove a chat node started by a test lands there.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from chat.conftest import ChatUser, broker_reachable, start_chat, wait_ready
from conftest import amqp_vhost

pytestmark = pytest.mark.skipif(
    not broker_reachable() or shutil.which("rabbitmqctl") is None,
    reason="needs RabbitMQ on 127.0.0.1:5672 and rabbitmqctl (scripts/test provides both)",
)


def queues(vhost: str) -> dict[str, int]:
    done = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    listed = {}
    for line in done.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            listed[parts[0]] = int(parts[1]) if parts[1].isdigit() else 0
    return listed


HISTORY_STREAM = "socket.io#/#recovery"


def test_the_session_broker_url_names_a_vhost_of_its_own():
    assert amqp_vhost(os.environ["AMQP_URL"]) != "/", os.environ["AMQP_URL"]


def test_a_chat_node_started_by_a_test_writes_only_into_the_test_vhost():
    test_vhost = amqp_vhost(os.environ["AMQP_URL"])
    marker = f"isolation-{os.getpid()}"
    # The chat's history is its recovery stream.
    history_before = queues("/").get(HISTORY_STREAM)
    node = start_chat("chat-isolation", "--adapter", "rabbitmq", "--node-name", marker)
    try:
        wait_ready(node)
        user = ChatUser(node.url, name="iso", room=marker)
        user.wait_for(lambda: user.welcomes)
        user.send("a test message")
        user.wait_for(lambda: user.messages)
        user.close()
        assert any(marker in name for name in queues(test_vhost)), "the node's queue is not in the test vhost"
        default = queues("/")
        assert not any(marker in name for name in default), "a test node declared a queue in the default vhost"
        assert default.get(HISTORY_STREAM) == history_before, "a test message reached the chat's history stream"
    finally:
        node.stop()
