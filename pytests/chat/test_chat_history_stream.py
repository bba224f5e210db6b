"""The rooms' history rides on the cluster adapter's recovery stream: one pipeline.

Each chat message is published to the broker once (into the namespace's replicated recovery
stream); every node builds its history from that stream, and a node that starts replays
what the stream holds before it accepts clients. Each test runs in a vhost of its own, so
stream counts are this test's alone.
"""

from __future__ import annotations

import os
import time

import pytest

from .conftest import ChatUser, broker_reachable, rabbitmqctl, start_node

pytestmark = pytest.mark.skipif(
    not broker_reachable() and os.environ.get("CI") != "true",
    reason="no RabbitMQ on 127.0.0.1:5672 (scripts/test starts one; in CI this test must run)",
)


def streams(vhost: str) -> dict[str, int]:
    """Every stream of the vhost with the messages it holds."""
    found = {}
    for line in rabbitmqctl("list_queues", "-p", vhost, "name", "type", "messages").splitlines()[1:]:
        name, kind, messages = line.split("\t")
        if kind == "stream":
            found[name] = int(messages)
    return found


def settled_stream_total(vhost: str, at_least: int = 0, timeout: float = 30.0) -> int:
    """Messages in the vhost's streams once RabbitMQ's statistics (refreshed every 5 s)
    show at least `at_least` and the same total twice in a row."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        total = sum(streams(vhost).values())
        if total >= at_least and total == previous:
            return total
        previous = total
        time.sleep(5.5)
    raise AssertionError(f"stream statistics never settled (last total {previous})")


def test_one_broker_message_per_chat_message(vhost):
    node = start_node(vhost, "chat-history-count")
    writer = reader = None
    try:
        writer = ChatUser(node.url, name="writer", room="count")
        reader = ChatUser(node.url, name="reader", room="count")
        writer.wait_for(lambda: writer.welcomes)
        reader.wait_for(lambda: reader.welcomes and reader.presence and len(reader.presence[-1]["members"]) == 2, timeout=10)
        names = streams(vhost)
        assert "socket.io#/#recovery" in names
        assert all(name.endswith("#recovery") for name in names), f"only the adapter's streams: {names}"
        before = settled_stream_total(vhost)
        count = 10
        for index in range(count):
            assert writer.send(f"line {index}")["ok"]
            reader.wait_for(lambda: len(reader.messages) == index + 1)
        added = settled_stream_total(vhost, at_least=before + count) - before
        # Each message is its own AMQP message here (sent one at a time); a periodic session
        # refresh may add one or two. Two pipelines (a history stream beside the adapter's)
        # would add 2 x count.
        assert count <= added <= count + 2, f"{added} broker messages for {count} chat messages"
    finally:
        for user in (writer, reader):
            if user:
                user.close()
        node.stop()


def test_a_node_started_later_replays_the_history_from_the_stream(vhost):
    first = start_node(vhost, "chat-history-first")
    room = "replayed"
    writer = None
    try:
        writer = ChatUser(first.url, name="historian", room=room)
        writer.wait_for(lambda: writer.welcomes)
        for index in range(5):
            assert writer.send(f"entry {index}")["ok"]
        writer.wait_for(lambda: len(writer.messages) == 5)
    finally:
        if writer:
            writer.close()
        first.stop()
    # No node is running now: the history exists only in the stream.
    second = start_node(vhost, "chat-history-second")
    try:
        reader = ChatUser(second.url, name="reader", room=room)
        reader.wait_for(lambda: reader.welcomes)
        history = reader.welcomes[0]["history"]
        assert [m["text"] for m in history] == [f"entry {index}" for index in range(5)]
        assert all(m["name"] == "historian" and m["room"] == room for m in history)
        reader.close()
    finally:
        second.stop()
