"""What the attacks on the chat share (test_input_traps, test_client_limits, test_secrets_and_configuration).

Raw Engine.IO long-polling over sockets (no client library in the way), each attacker bound
to its own loopback address (127.0.0.x) so per-address limits are exercised for real and the
good clients (python-socketio from 127.0.0.1) keep their own budget. After each attack the
node must be alive, two other clients must still exchange messages, and the specific
refusal must have happened. Issue #10; limits in docs/SECURITY.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import requests
from requests.adapters import HTTPAdapter

from interop.rawclient import RawPolling
from chat.conftest import ChatUser

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
TEST_VHOST = "chat-hostile-tests"
# Short pings: a long-poll GET with nothing to deliver returns within this.
FAST_PINGS = ("--ping-interval", "400", "--ping-timeout", "5000")


def private_vhost_url() -> str:
    """A vhost of its own, so these nodes share neither exchanges nor the history stream with
    other tests; the default vhost when rabbitmqctl is not usable here."""
    if AMQP_URL.rstrip("/").count("/") > 2:
        return AMQP_URL  # a vhost was given
    try:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", TEST_VHOST], capture_output=True, timeout=20)
        done = subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", TEST_VHOST, "guest", ".*", ".*", ".*"],
                              capture_output=True, timeout=20)
        if done.returncode == 0:
            return AMQP_URL.rstrip("/") + "/" + TEST_VHOST
    except (OSError, subprocess.TimeoutExpired):
        pass
    return AMQP_URL


class SourceAddressAdapter(HTTPAdapter):
    """Connections from one loopback address: the chat sees it as the client address."""

    def __init__(self, source_ip: str):
        self.source_ip = source_ip
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


class Attacker(RawPolling):
    """A polling session from `source_ip` that records every packet it is sent."""

    def __init__(self, base_url: str, source_ip: str, timeout: float = 10.0):
        self.base_url = base_url
        self.timeout = timeout
        self.http = requests.Session()
        self.http.mount("http://", SourceAddressAdapter(source_ip))
        response = self.http.get(self._url(), timeout=timeout)
        response.raise_for_status()
        assert response.text.startswith("0"), response.text[:200]
        self.open_packet = json.loads(response.text[1:])
        self.sid = self.open_packet["sid"]
        self.received: list[str] = []

    def collect(self, predicate, timeout: float = 8.0) -> list[str]:
        """Polls until `predicate(all packets so far)` holds; returns them."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            assert time.monotonic() < deadline, f"timed out; last packets: {[p[:120] for p in self.received[-6:]]}"
            self.received.extend(p for p in self.receive_packets() if isinstance(p, str))
        return self.received

    def connect(self, auth: dict | None = None) -> dict:
        """CONNECT to "/" and wait for the chat's welcome; returns the welcome."""
        self.post("40" + ("" if auth is None else json.dumps(auth, ensure_ascii=False)))
        self.collect(lambda packets: any(p.startswith('42["welcome"') for p in packets))
        return event_args(next(p for p in self.received if p.startswith('42["welcome"')))[0]

    def acks(self) -> dict[int, list]:
        result = {}
        for packet in self.received:
            if packet.startswith("43"):
                bracket = packet.index("[")
                result[int(packet[2:bracket])] = json.loads(packet[bracket:])
        return result

    def events(self, name: str) -> list[list]:
        return [event_args(p) for p in self.received if p.startswith(f'42["{name}"')]


def event_args(packet: str) -> list:
    return json.loads(packet[2:])[1:]


def metric(node, name: str) -> float:
    total = 0.0
    for line in requests.get(node.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def assert_node_serves(node) -> None:
    """Alive, and two fresh clients in a room of their own exchange a message."""
    assert node.is_alive(), f"the node died:\n{node.tail()}"
    room = "check-" + uuid.uuid4().hex[:8]
    alice = ChatUser(node.url, name="alice", room=room)
    bob = ChatUser(node.url, name="bob", room=room)
    try:
        bob.wait_for(lambda: bob.welcomes)
        assert alice.send("still here?")["ok"] is True
        bob.wait_for(lambda: any(m["text"] == "still here?" for m in bob.messages))
    finally:
        alice.close()
        bob.close()
    assert node.is_alive(), f"the node died:\n{node.tail()}"
