"""Fixtures for the chat application: real `chat` processes, real clients."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import socketio

from conftest import REPO_ROOT, SioServerProcess

DEFAULT_CHAT = REPO_ROOT / ".build" / "debug" / "chat"


def chat_binary() -> Path:
    return Path(os.environ.get("CHAT_BIN", str(DEFAULT_CHAT)))


def broker_reachable(port: int = 5672) -> bool:
    """Whether a RabbitMQ listener answers on 127.0.0.1 (scripts/test starts one)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_ready(node, timeout: float = 30.0) -> None:
    """Until the node's /readyz answers 200 (its broker connection and consumers are up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(node.url + "/readyz", timeout=2).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"node {node.url} never became ready:\n{node.tail()}")


def start_chat(name: str, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> SioServerProcess:
    return SioServerProcess(chat_binary(), name=name, extra_args=args, env=env, port=port)


class ChatUser:
    """A python-socketio client that records what the chat sends it.

    Handlers take *args: with connection state recovery on, socket.io appends the
    packet's offset as a last argument to every event (the JS client reads it from there).
    """

    def __init__(self, url: str, name: str | None = None, room: str | None = None,
                 transports: list[str] | None = None, auth: dict | None = None):
        self.client = socketio.Client(reconnection=False)
        self.messages: list[dict] = []
        self.errors: list[dict] = []
        self.welcomes: list[dict] = []
        self.presence: list[dict] = []
        self.typing: list[dict] = []
        self.changed = threading.Condition()
        for event, sink in (("message", self.messages), ("chat-error", self.errors), ("welcome", self.welcomes),
                            ("presence", self.presence), ("typing", self.typing)):
            self.client.on(event, self._recorder(sink))
        if auth is None:
            auth = {key: value for key, value in (("name", name), ("room", room)) if value is not None}
        self.client.connect(url, auth=auth or None, transports=transports or ["websocket"], wait_timeout=10)

    def _recorder(self, sink: list):
        def record(payload, *_offset):
            with self.changed:
                sink.append(payload)
                self.changed.notify_all()
        return record

    def wait_for(self, predicate, timeout: float = 5.0):
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "timed out waiting for the chat"

    def send(self, text, timeout: float = 5.0):
        return self.client.call("message", text, timeout=timeout)

    def close(self):
        if self.client.connected:
            self.client.disconnect()


def serve_memory_node(name: str, env: dict[str, str] | None = None):
    """A module's chat node on the in-memory adapter (use with `yield from` in a fixture),
    with a rate limit high enough for bulk tests; fails if the node died during the tests."""
    node = start_chat(name, "--adapter", "memory", "--rate-limit", "1000", "--rate-burst", "1000", env=env)
    yield node
    alive = node.is_alive()
    node.stop()
    assert alive, f"the chat node died during the tests:\n{node.tail()}"


@pytest.fixture(scope="module")
def chat_node():
    """One node on the in-memory adapter (the rate-limit test starts its own node with the defaults)."""
    yield from serve_memory_node("chat-memory")


@pytest.fixture
def users(chat_node):
    opened: list[ChatUser] = []

    def open_user(**kwargs) -> ChatUser:
        user = ChatUser(chat_node.url, **kwargs)
        opened.append(user)
        return user

    yield open_user
    for user in opened:
        user.close()


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest.fixture
def vhost():
    """A RabbitMQ vhost of the test's own, deleted after it."""
    name = f"sio-chat-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def start_node(vhost: str, name: str, env: dict[str, str] | None = None):
    """A chat node on RabbitMQ in `vhost`, once ready."""
    node = start_chat(name, "--adapter", "rabbitmq", "--rate-limit", "100", "--rate-burst", "100",
                      env={"AMQP_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}", **(env or {})})
    wait_ready(node)
    return node
