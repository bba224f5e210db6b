"""Hostile input against the chat, the Socket.IO layer and the cluster adapter: none of it may
reach a trap or cost more than linear time; the node stays up and serving (attackkit.py)."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import requests

from conftest import read_rss_kib
from interop.rawclient import RECORD_SEPARATOR
from chat.conftest import ChatUser, broker_reachable, chat_binary, start_chat, wait_ready

from .attackkit import FAST_PINGS, Attacker, assert_node_serves, metric, private_vhost_url


@pytest.fixture(scope="module")
def rabbit_node():
    if not broker_reachable():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672 (scripts/rabbitmq start)")
    node = start_chat("hostile-rabbitmq", "--adapter", "rabbitmq", "--node-name", "hostile", *FAST_PINGS,
                      env={"AMQP_URL": private_vhost_url()})
    try:
        wait_ready(node)
        yield node
        assert node.is_alive(), f"the RabbitMQ-mode node died during the tests:\n{node.tail()}"
    finally:
        node.stop()


def test_a_70000_byte_pid_is_ignored_and_the_client_connects_as_new(rabbit_node):
    # Before: the recovery claim reached the cluster encoder's precondition and stopped the node.
    attacker = Attacker(rabbit_node.url, "127.0.0.21")
    pid = "A" * 70_000
    welcome = attacker.connect({"pid": pid, "offset": "x"})
    reply = json.loads(next(p for p in attacker.received if p.startswith("40{"))[2:])
    assert reply["pid"] != pid and len(reply["pid"]) == 20
    assert welcome["room"] == "general"  # a welcome: connected as a new session, not recovered
    assert_node_serves(rabbit_node)
    assert metric(rabbit_node, "chat_cluster_messages_unencodable") == 0, "the claim must not even reach the encoder"


def test_a_room_of_one_character_and_66_kilobytes_is_refused(rabbit_node):
    # 22,000 x U+1100 is one grapheme cluster: it passed the 32-character check, and its
    # first broadcast stopped the node in the cluster encoder.
    room = "\u1100" * 22_000
    attacker = Attacker(rabbit_node.url, "127.0.0.22")
    welcome = attacker.connect({"room": room, "name": room})
    assert welcome["room"] == "general" and welcome["name"].startswith("guest-")
    attacker.post("421" + json.dumps(["join", {"room": room}], ensure_ascii=False) + RECORD_SEPARATOR
                  + "422" + json.dumps(["set-name", room], ensure_ascii=False))
    attacker.collect(lambda _: {1, 2} <= set(attacker.acks()))
    assert attacker.acks()[1][0]["error"]["code"] == "invalid_room"
    assert attacker.acks()[2][0]["error"]["code"] == "invalid_name"
    attacker.collect(lambda _: len(attacker.events("chat-error")) >= 2)
    assert [e[0]["code"] for e in attacker.events("chat-error")] == ["invalid_room", "invalid_name"], attacker.received[-6:]
    assert "128 bytes" in attacker.acks()[1][0]["error"]["message"]
    assert_node_serves(rabbit_node)
    assert metric(rabbit_node, "chat_cluster_messages_unencodable") == 0


def test_an_auth_object_with_40000_keys_parses_in_linear_time(rabbit_node):
    # Each new key used to be compared with every earlier one: 2.7 s of a blocked event loop.
    attacker = Attacker(rabbit_node.url, "127.0.0.23")
    auth = "{" + ",".join(f'"k{i}":{i}' for i in range(40_000)) + ',"name":"keys"}'
    started = time.monotonic()
    attacker.post("40" + auth)
    attacker.collect(lambda packets: any(p.startswith('42["welcome"') for p in packets))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5, f"CONNECT with 40,000 keys took {elapsed:.2f} s"
    assert attacker.events("welcome")[0][0]["name"] == "keys"  # the last key is still read
    assert_node_serves(rabbit_node)


def test_one_character_of_600_kilobytes_is_refused_and_never_reaches_the_history(rabbit_node):
    room = "accents-" + uuid.uuid4().hex[:8]
    watcher = ChatUser(rabbit_node.url, name="watcher", room=room)
    attacker = Attacker(rabbit_node.url, "127.0.0.24")
    attacker.connect({"room": room, "name": "accents"})
    rss_before = read_rss_kib(rabbit_node.pid)
    accented = "e" + "\u0301" * 300_000
    attacker.post("421" + json.dumps(["message", accented], ensure_ascii=False))
    attacker.collect(lambda _: 1 in attacker.acks())
    refusal = attacker.acks()[1][0]
    assert refusal["ok"] is False and refusal["error"]["code"] == "message_too_long", refusal
    assert "8192 bytes" in refusal["error"]["message"]
    attacker.collect(lambda _: attacker.events("chat-error"))
    assert watcher.send("after the accents")["ok"] is True
    watcher.wait_for(lambda: any(m["text"] == "after the accents" for m in watcher.messages))
    assert [m["text"] for m in watcher.messages] == ["after the accents"]
    newcomer = ChatUser(rabbit_node.url, name="newcomer", room=room)
    newcomer.wait_for(lambda: newcomer.welcomes)
    assert all(len(m["text"]) < 100 for m in newcomer.welcomes[0]["history"])
    for user in (watcher, newcomer):
        user.close()
    assert_node_serves(rabbit_node)
    assert read_rss_kib(rabbit_node.pid) - rss_before < 64 * 1024, "RSS grew by more than 64 MiB"


def test_a_huge_presence_count_from_another_node_saturates(rabbit_node):
    # A peer (here sio-cluster-node playing a hostile one) answers the chat's presence query
    # with count 2^63-1 and 5,000 names: adding the counts overflowed and trapped.
    binary = chat_binary().parent / "sio-cluster-node"
    if not binary.exists():
        pytest.skip(f"{binary} missing: swift build --product sio-cluster-node")
    answer = json.dumps({"members": [f"ghost{i}" for i in range(5_000)], "count": 9223372036854775807})
    peer = subprocess.Popen([str(binary), "--port", "0", "--node-name", "hostile-peer", "--amqp-url", private_vhost_url(),
                             "--no-recovery", "--heartbeat-interval", "1", "--answer-chat-presence", answer],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        assert peer.stdout is not None
        for line in peer.stdout:
            if "listening on" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)  # a heartbeat or two: the chat node counts the peer in its membership
        room = "crowd-" + uuid.uuid4().hex[:8]
        user = ChatUser(rabbit_node.url, name="ada", room=room)
        user.wait_for(lambda: user.welcomes, timeout=10)
        welcome = user.welcomes[0]
        assert welcome["memberCount"] == 2**31 - 1, welcome["memberCount"]
        assert len(welcome["members"]) == 100 and welcome["members"][0] == "ada"  # names capped, sorted
        user.close()
        assert_node_serves(rabbit_node)
    finally:
        peer.terminate()
        try:
            peer.wait(timeout=5)
        except subprocess.TimeoutExpired:
            peer.kill()


@pytest.mark.parametrize("recovery", [True, False])
def test_the_adapter_drops_a_broadcast_it_cannot_encode_and_the_node_lives(recovery):
    # Below the chat's limits, at the library level: an application that lets a 66 KB room
    # through. The cluster encoder used to trap; the adapter now delivers locally, drops the
    # cluster copy, counts it and logs (sparingly).
    if not broker_reachable():
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    binary = chat_binary().parent / "sio-cluster-node"
    if not binary.exists():
        pytest.skip(f"{binary} missing: swift build --product sio-cluster-node")
    import socketio
    from conftest import free_loopback_port
    port = free_loopback_port()
    args = [str(binary), "--port", str(port), "--node-name", "wide-room", "--amqp-url", private_vhost_url()]
    peer = subprocess.Popen(args + ([] if recovery else ["--no-recovery"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert peer.stdout is not None
        for line in peer.stdout:
            output.append(line)
            if "listening on" in line:
                break
        room = "\u1100" * 22_000
        client = socketio.Client(reconnection=False)
        received = []
        client.on("broadcast", lambda *args: received.append(args[0]))
        client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=10)
        assert client.call("join", room, timeout=10) == room
        for n in range(2):
            assert client.call("broadcast", {"room": room, "payload": f"wide {n}"}, timeout=10) is True
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received == ["wide 0", "wide 1"], "local delivery goes on"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).json()
        # With recovery the socket's session record (written ahead, naming its rooms) cannot be
        # encoded either: dropped and counted like the two broadcasts, the node goes on.
        assert metrics["encodingFailures"] == (3 if recovery else 2), metrics
        client.disconnect()
        assert peer.poll() is None, "the node died"
    finally:
        peer.terminate()
        try:
            rest, _ = peer.communicate(timeout=5)
            output.append(rest or "")
        except subprocess.TimeoutExpired:
            peer.kill()
    log = "".join(output)
    # Logged at the 1st, 2nd, 4th, 8th... failure, so a flood cannot flood the log. With
    # recovery the disconnect's session record is the 4th failure.
    assert log.count("over the format's limits dropped") == (3 if recovery else 2), log[-2000:]


