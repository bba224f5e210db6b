"""Three Socket.IO nodes clustered over RabbitMQ, driven by python-socketio clients."""
import signal
import time

import pytest
import requests

from .conftest import Client, Node, list_queues, rabbitmq, wait_until


def _payloads(client, event="broadcast"):
    return [args[0] for args in client.received(event)]


def _settle():
    # Extra deliveries (duplicates) would arrive within this after the expected ones.
    time.sleep(0.7)


def test_broadcast_to_all_from_each_node_reaches_every_client_exactly_once(cluster, clients):
    everyone = [clients(node) for node in cluster for _ in range(2)]
    for index, node in enumerate(cluster):
        assert everyone[index * 2].call("broadcast", {"payload": {"from": node.name}}) is True
    expected = sorted(node.name for node in cluster)
    assert wait_until(lambda: all(len(_payloads(c)) >= 3 for c in everyone), 10)
    _settle()
    for client in everyone:
        assert sorted(p["from"] for p in _payloads(client)) == expected, client.node.name


def test_broadcast_to_room_with_except_from_each_node(cluster, clients):
    a1, b1, c1 = (clients(node) for node in cluster)
    a2, b2, c2 = (clients(node) for node in cluster)
    for member in (a1, b1, c1):
        assert member.call("join", "r") == "r"
    assert c1.call("join", "muted") == "muted"
    for sender, tag in ((a2, "from-a"), (b2, "from-b"), (c2, "from-c")):
        assert sender.call("broadcast", {"room": "r", "except": "muted", "payload": tag}) is True
    assert wait_until(lambda: len(_payloads(a1)) >= 3 and len(_payloads(b1)) >= 3, 10)
    _settle()
    assert sorted(_payloads(a1)) == ["from-a", "from-b", "from-c"]
    assert sorted(_payloads(b1)) == ["from-a", "from-b", "from-c"]
    assert _payloads(c1) == [], "excepted room must not receive"
    for outsider in (a2, b2, c2):
        assert _payloads(outsider) == []
    # The same room without except reaches the third member too, once.
    assert a2.call("broadcast", {"room": "r", "payload": "all-members"}) is True
    assert wait_until(lambda: "all-members" in _payloads(c1), 10)
    _settle()
    for member in (a1, b1, c1):
        assert _payloads(member).count("all-members") == 1


def test_broadcast_with_ack_counts_every_client_on_every_node(cluster, clients):
    everyone = []
    for node in cluster:
        for _ in range(2):
            client = clients(node)
            client.sio.on("ack-request", lambda *args, c=client: f"ok-{c.node.name}")
            everyone.append(client)
    result = everyone[0].call("broadcast-with-ack", {"payload": "ping", "timeout_ms": 3000})
    assert result["complete"] is True
    assert sorted(result["responses"]) == ["ok-a", "ok-a", "ok-b", "ok-b", "ok-c", "ok-c"]


def test_server_side_emit_with_acks_answers_from_every_other_node(cluster, clients):
    asker = clients(cluster[0])
    answers = asker.call("server-side-emit", {"payload": "hello"})
    assert sorted(answers, key=lambda a: a["node"]) == [{"node": "b", "payload": "hello"}, {"node": "c", "payload": "hello"}]


def test_fetch_sockets_returns_remote_sockets_with_rooms_and_data(cluster, clients):
    a1, b1, c1 = (clients(node) for node in cluster)
    clients(cluster[2])  # not in the room: must not be returned
    for client in (a1, b1, c1):
        assert client.call("join", "f") == "f"
        assert client.call("set-data", {"colour": client.node.name + "-blue"}) is True
    sockets = a1.call("fetch-sockets", {"room": "f"})
    by_id = {s["id"]: s for s in sockets}
    assert set(by_id) == {a1.sid, b1.sid, c1.sid}
    for client in (a1, b1, c1):
        entry = by_id[client.sid]
        assert entry["node"] == client.node.name
        assert set(entry["rooms"]) == {client.sid, "f"}
        assert entry["data"]["colour"] == client.node.name + "-blue"


def test_remote_join_leave_and_disconnect(cluster, clients):
    a1 = clients(cluster[0])
    c1 = clients(cluster[2])
    b1 = clients(cluster[1])
    assert a1.call("remote-join", {"target": c1.sid, "room": "x"}) is True
    assert wait_until(lambda: "x" in (a1.call("fetch-sockets", {"room": "x"}) or [{}])[0].get("rooms", []), 5)
    assert b1.call("broadcast", {"room": "x", "payload": "to-x"}) is True
    assert wait_until(lambda: _payloads(c1) == ["to-x"], 10)
    assert a1.call("remote-leave", {"target": c1.sid, "room": "x"}) is True
    assert wait_until(lambda: a1.call("fetch-sockets", {"room": "x"}) == [], 5)
    assert b1.call("broadcast", {"room": "x", "payload": "after-leave"}) is True
    _settle()
    assert _payloads(c1) == ["to-x"]
    assert a1.call("remote-disconnect", {"target": b1.sid}) is True
    assert wait_until(lambda: not b1.sio.connected, 10), "remote disconnect did not reach node b"
    assert a1.sio.connected and c1.sio.connected


def test_killed_node_costs_at_most_the_timeout_and_its_queue_expires(cluster, clients):
    a1 = clients(cluster[0])
    b1 = clients(cluster[1])
    clients(cluster[2])
    dead = cluster[2]
    dead_queue = next(q for q in list_queues() if q.endswith(dead.node_id))
    dead.stop(signal.SIGKILL)
    started = time.monotonic()
    sockets = a1.call("fetch-sockets", {"room": ""})
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1.5, f"fetch-sockets took {elapsed:.1f}s with a dead node (timeout 3 s)"
    assert {s["id"] for s in sockets} >= {a1.sid, b1.sid}
    assert wait_until(lambda: a1.call("server-count") == 2, 3 + 3), "dead node still counted"
    started = time.monotonic()
    sockets = a1.call("fetch-sockets", {"room": ""})
    assert time.monotonic() - started < 1.5, "once dropped from membership the dead node is not waited for"
    assert wait_until(lambda: dead_queue not in list_queues(), 6 + 12, interval=1), "dead node's queue never expired"


def _ready(node):
    try:
        return requests.get(node.url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _metrics(node):
    return requests.get(node.url + "/metrics", timeout=5).json()


def test_broker_restart_under_steady_traffic_loses_and_duplicates_nothing(cluster, clients):
    observers = [clients(node) for node in cluster for _ in range(2)]
    senders = [clients(node) for node in cluster]
    count, interval_ms = 300, 50  # 15 s of traffic from every node
    for sender in senders:
        assert sender.call("start-traffic", {"count": count, "interval_ms": interval_ms}) is True
    time.sleep(2)
    rabbitmq("stop-app")
    assert wait_until(lambda: not any(_ready(node) for node in cluster), 5), "/readyz still 200 with the broker away"
    time.sleep(10)
    rabbitmq("start-app")
    returned = time.monotonic()
    assert wait_until(lambda: all(_ready(node) for node in cluster), 10, interval=0.2), "not ready within 10 s of the broker's return"
    ready_after = time.monotonic() - returned
    expected = {(node.name, seq) for node in cluster for seq in range(count)}

    def seen(client):
        return [(p["node"], p["seq"]) for p in _payloads(client, "traffic")]

    done = wait_until(lambda: all(len(seen(o)) >= len(expected) for o in observers), 20)
    _settle()
    metrics = [_metrics(node) for node in cluster]
    overflow = sum(m["outboxOverflow"] for m in metrics)
    print(f"\nready {ready_after:.1f}s after the broker returned; metrics: {metrics}")
    for observer in observers:
        assert observer.sio.connected, "clients stay connected while the broker is away"
        received = seen(observer)
        missing = expected - set(received)
        duplicated = len(received) - len(set(received))
        assert duplicated == 0, f"{observer.node.name}: {duplicated} duplicates"
        assert not missing or overflow > 0, f"{observer.node.name}: {len(missing)} missing, no overflow reported"
        # Per origin node, packets arrive in the order they were emitted.
        for node in cluster:
            sequence = [seq for origin, seq in received if origin == node.name]
            assert sequence == sorted(sequence), f"{observer.node.name}: out of order from {node.name}"
    assert done or overflow > 0, "not every packet arrived"


def test_a_deleted_recovery_stream_is_reported_and_a_redeclared_one_is_read_from_its_start(cluster, clients):
    """An operator deletes the recovery stream under running nodes: their stream consumers are
    cancelled and /readyz says so. A node that starts declares the stream again; the others'
    consumers come back on the new stream, whose offsets start over, and deliver again."""
    node_a, node_b, node_c = cluster
    observer, sender = clients(node_a), clients(node_b)
    for index in range(20):
        assert sender.call("broadcast", {"payload": f"before-{index}"}) is True
    assert wait_until(lambda: len(_payloads(observer)) >= 20, 10)
    node_queue = next(q for q in list_queues() if q.endswith("#/#" + node_a.node_id))
    prefix = node_queue[: -len("#/#" + node_a.node_id)]  # this test's own (earlier tests' streams remain)
    stream = prefix + "#/#recovery"
    assert stream in list_queues()
    rabbitmq("delete-queue", stream)
    assert wait_until(lambda: not any(_ready(node) for node in cluster), 10), "nodes still ready without their stream"

    node_c.stop()
    cluster[2] = Node("c", node_c.port, prefix)  # declares the stream again (stopped by the fixture)
    assert wait_until(lambda: all(_ready(node) for node in cluster), 15), "not ready again on the new stream"
    late = clients(cluster[2])
    for index in range(20):
        assert sender.call("broadcast", {"payload": f"after-{index}"}) is True
    expected = [f"before-{index}" for index in range(20)] + [f"after-{index}" for index in range(20)]
    assert wait_until(lambda: len(_payloads(observer)) >= 40 and len(_payloads(late)) >= 20, 10)
    _settle()
    assert _payloads(observer) == expected
    assert _payloads(late) == expected[20:]
    assert any("recovery stream was recreated" in line for line in node_a.lines), "node a did not notice the new stream"


def test_forced_connection_close_under_traffic_loses_and_duplicates_nothing(cluster, clients):
    """The broker drops every connection (it stays up, so the AMQP client reconnects at
    once): unconfirmed and held messages are re-sent, copies are dropped by the receivers."""
    observers = [clients(node) for node in cluster]
    senders = [clients(node) for node in cluster]
    count = 200
    for sender in senders:
        assert sender.call("start-traffic", {"count": count, "interval_ms": 10}) is True
    time.sleep(0.7)
    rabbitmq("close-connections")
    expected = {(node.name, seq) for node in cluster for seq in range(count)}

    def seen(client):
        return [(p["node"], p["seq"]) for p in _payloads(client, "traffic")]

    done = wait_until(lambda: all(len(seen(o)) >= len(expected) for o in observers), 30)
    _settle()
    metrics = [_metrics(node) for node in cluster]
    print(f"\nafter a forced close: {metrics}")
    for node in cluster:
        assert any("RabbitMQ connection recovered" in line for line in node.lines), f"{node.name} never lost its connection"
    for observer in observers:
        received = seen(observer)
        assert len(received) == len(set(received)), f"{observer.node.name}: duplicates"
        assert set(received) == expected, f"{observer.node.name}: {len(expected - set(received))} missing"
        for node in cluster:
            sequence = [seq for origin, seq in received if origin == node.name]
            assert sequence == sorted(sequence), f"{observer.node.name}: out of order from {node.name}"
    assert done
    assert all(_ready(node) for node in cluster)


class RawSocketIOClient:
    """A minimal Socket.IO v5 client over one WebSocket, enough for connection state
    recovery (python-socketio's client does not send `pid`/`offset`)."""

    def __init__(self, node, auth=None):
        import json
        import websocket

        self.json = json
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=websocket", timeout=10)
        assert self.ws.recv().startswith("0")  # Engine.IO open
        self.ws.send("40" + (json.dumps(auth) if auth else ""))
        self.events = []
        deadline = time.monotonic() + 10
        while True:
            packet = self._next(deadline)
            if packet.startswith("40"):
                self.connect_reply = json.loads(packet[2:])
                break
            self._record(packet)

    def _next(self, deadline=None):
        # The deadline covers the whole wait: a per-recv timeout would start again after
        # every server ping and never expire when it is longer than the ping interval.
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no Socket.IO packet before the deadline")
                self.ws.settimeout(remaining)
            frame = self.ws.recv()
            if frame == "2":  # Engine.IO ping
                self.ws.send("3")
                continue
            return frame

    def _record(self, packet):
        if packet.startswith("42"):
            self.events.append(self.json.loads(packet[2:]))

    def read_events(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            try:
                self._record(self._next(deadline))
            except Exception:
                break
        return self.events

    def call(self, event, argument, ack_id=0, timeout=10):
        """Emits with an ack id and returns the ack's arguments (events meanwhile are kept)."""
        self.ws.send(f"42{ack_id}" + self.json.dumps([event, argument]))
        deadline = time.monotonic() + timeout
        while True:
            packet = self._next(deadline)
            if packet.startswith(f"43{ack_id}["):
                return self.json.loads(packet[len(f"43{ack_id}"):])
            self._record(packet)

    def close(self):
        self.ws.close()


def test_client_missing_packets_on_one_node_recovers_them_on_another(cluster, clients):
    node_a, node_b = cluster[0], cluster[1]
    sender = clients(node_a)
    raw = RawSocketIOClient(node_a)
    sid, pid = raw.connect_reply["sid"], raw.connect_reply["pid"]
    assert sender.call("broadcast", {"payload": "before"}) is True
    events = raw.read_events(1, 10)
    assert events and events[0][0] == "broadcast" and events[0][1] == "before"
    last_offset = events[-1][-1]
    raw.close()
    time.sleep(0.5)
    for index in range(50):
        assert sender.call("broadcast", {"payload": f"missed-{index}"}) is True
    time.sleep(0.5)
    again = RawSocketIOClient(node_b, auth={"pid": pid, "offset": last_offset})
    try:
        assert again.connect_reply["sid"] == sid, "recovered sockets keep their id"
        missed = again.read_events(50, 15)
        assert [event[1] for event in missed] == [f"missed-{index}" for index in range(50)]
        time.sleep(0.5)
        again.read_events(51, 0.3)
        assert len(again.events) == 50, "nothing more than the missed packets"
    finally:
        again.close()


def _room_traffic_reaching_uninvolved_node(cluster, clients):
    """Node a has the only member of room "solo"; b and c each broadcast 20 packets to it.
    Returns how many of those broadcasts reached node c (which has no member)."""
    member = clients(cluster[0])
    assert member.call("join", "solo") == "solo"
    senders = [clients(cluster[1]), clients(cluster[2])]
    # No warm-up: the join's ack already means the room binding is in place (joinAndWait).
    probe_c = clients(cluster[2])
    before = probe_c.call("metrics")["receivedBroadcasts"]
    for sender in senders:
        for index in range(20):
            assert sender.call("broadcast", {"room": "solo", "payload": index}) is True

    def counted():
        return [p for p in _payloads(member) if isinstance(p, int)]

    assert wait_until(lambda: len(counted()) >= 40, 10)
    _settle()
    assert sorted(counted()) == sorted(list(range(20)) * 2)
    return probe_c.call("metrics")["receivedBroadcasts"] - before


@pytest.mark.parametrize("cluster", [("--no-recovery",)], indirect=True)
def test_without_room_aware_routing_every_node_receives_every_room_broadcast(cluster, clients):
    reached = _room_traffic_reaching_uninvolved_node(cluster, clients)
    print(f"\nroom broadcasts reaching an uninvolved node, fan-out routing: {reached}")
    assert reached == 20  # b's 20 (c's own are never sent back to it)


@pytest.mark.parametrize("cluster", [("--room-aware", "--no-recovery")], indirect=True)
def test_room_aware_routing_sends_room_broadcasts_only_to_member_nodes(cluster, clients):
    reached = _room_traffic_reaching_uninvolved_node(cluster, clients)
    print(f"\nroom broadcasts reaching an uninvolved node, room-aware routing: {reached} (saved 20 of 20)")
    assert reached == 0


def test_measure_cross_node_broadcast_rate_and_publish_latency(cluster, clients):
    """Prints numbers for docs/CLUSTER.md; asserts only that everything arrived once."""
    observers = [clients(node) for node in cluster]
    sender = clients(cluster[0])
    count = 1000
    started = time.monotonic()
    assert sender.call("start-traffic", {"count": count, "interval_ms": 1}) is True

    def seen(client):
        return [p["seq"] for p in _payloads(client, "traffic")]

    assert wait_until(lambda: all(len(seen(o)) >= count for o in observers), 60)
    elapsed = time.monotonic() - started
    _settle()
    for observer in observers:
        assert seen(observer) == list(range(count))
    metrics = _metrics(cluster[0])
    print(f"\n{count} broadcasts from node a reached nodes b and c in {elapsed:.2f}s "
          f"({count / elapsed:.0f}/s, emitter paced at <=1000/s); publish latency mean "
          f"{metrics['meanPublishLatencyMs']:.2f} ms, max {metrics['maxPublishLatencyMs']:.1f} ms; "
          f"{metrics['published']} messages in {metrics['publishedBatches']} AMQP publishes")


@pytest.mark.parametrize("cluster", [("--room-aware", "--no-recovery")], indirect=True)
def test_room_aware_join_is_effective_on_every_node_once_acknowledged(cluster, clients):
    """The join handler acknowledges after `joinAndWait`: a broadcast sent to the room right
    after the ack, from another node, must reach the new member, every time."""
    member = clients(cluster[1])
    sender = clients(cluster[0])
    rounds = 40
    for index in range(rounds):
        room = f"fresh-{index}"
        assert member.call("join", room) == room
        assert sender.call("broadcast", {"room": room, "payload": room}) is True
    expected = [f"fresh-{index}" for index in range(rounds)]
    wait_until(lambda: len(_payloads(member)) >= rounds, 10)
    _settle()
    assert sorted(_payloads(member)) == sorted(expected), f"missed {sorted(set(expected) - set(_payloads(member)))}"


@pytest.mark.parametrize("cluster", [("--room-aware", "--no-recovery")], indirect=True)
def test_room_aware_rejoin_after_last_leave_is_never_undone_by_the_unbind(cluster, clients):
    """Leave (last member: unbind) and join again at once, many times: the new join's bind
    must come after the old unbind, so the broadcast after each join arrives."""
    member = clients(cluster[1])
    sender = clients(cluster[0])
    rounds = 25
    for index in range(rounds):
        assert member.call("join", "cycle") == "cycle"
        assert sender.call("broadcast", {"room": "cycle", "payload": f"in-{index}"}) is True
        # The sender's ack means "published", not "delivered": leave only once it arrived
        # (a packet reaching the node after the leave is rightly not delivered).
        if not wait_until(lambda: f"in-{index}" in _payloads(member), 5):
            break
        assert member.call("leave", "cycle") == "cycle"
        # Published while the room is left; it may still arrive after the next join (then it is
        # rightly delivered), so only the "in" packets are counted.
        assert sender.call("broadcast", {"room": "cycle", "payload": f"out-{index}"}) is True
    _settle()
    received = [p for p in _payloads(member) if p.startswith("in-")]
    expected = [f"in-{index}" for index in range(rounds)]
    assert received == expected, f"missed {sorted(set(expected) - set(received))}"


def test_fetch_sockets_keeps_binary_values_in_remote_socket_data(cluster, clients):
    a1, b1 = clients(cluster[0]), clients(cluster[1])
    blob = bytes([0, 1, 2, 0xFF, 0x7B, 0x22]) + b"tail"
    assert b1.call("set-data", {"avatar": blob, "nested": {"bytes": [b"\x00", 7]}}) is True
    assert b1.call("join", "bin") == "bin"
    sockets = a1.call("fetch-sockets", {"room": "bin"})
    assert [s["id"] for s in sockets] == [b1.sid]
    data = sockets[0]["data"]
    assert data["node"] == "b"
    assert data["avatar"] == blob and isinstance(data["avatar"], bytes)
    assert data["nested"] == {"bytes": [b"\x00", 7]}


def test_a_session_is_restored_once_when_a_client_reconnects_to_two_nodes_at_once(cluster, clients):
    import threading

    sender = clients(cluster[0])
    raw = RawSocketIOClient(cluster[0])
    sid, pid = raw.connect_reply["sid"], raw.connect_reply["pid"]
    assert sender.call("broadcast", {"payload": "seen"}) is True
    offset = raw.read_events(1, 10)[-1][-1]
    raw.close()
    time.sleep(0.5)
    for index in range(3):
        assert sender.call("broadcast", {"payload": f"missed-{index}"}) is True
    time.sleep(0.5)
    attempts = {}
    errors = []

    def reconnect(node):
        try:
            attempts[node.name] = RawSocketIOClient(node, auth={"pid": pid, "offset": offset})
        except Exception as error:  # reported below, so a failure is not silent
            errors.append(error)

    threads = [threading.Thread(target=reconnect, args=(node,)) for node in (cluster[1], cluster[2])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert not errors, errors
        restored = [name for name, client in attempts.items() if client.connect_reply["sid"] == sid]
        assert len(restored) == 1, f"restored on {restored}; one of b and c must win, the other start over"
        winner = attempts[restored[0]]
        loser = attempts[({"b", "c"} - set(restored)).pop()]
        assert [event[1] for event in winner.read_events(3, 10)] == ["missed-0", "missed-1", "missed-2"]
        assert loser.connect_reply["sid"] != sid
        assert loser.read_events(1, 1) == [], "a refused restore replays nothing"
        # The same pid and offset once more, later and on the first node: still refused.
        late = RawSocketIOClient(cluster[0], auth={"pid": pid, "offset": offset})
        try:
            assert late.connect_reply["sid"] != sid
        finally:
            late.close()
    finally:
        for client in attempts.values():
            client.close()


@pytest.mark.parametrize("cluster", [("--no-recovery",), ("--room-aware", "--no-recovery")], indirect=True, ids=["fanout", "room-aware"])
def test_measure_room_broadcast_deliveries_per_node(cluster, clients, request):
    """Prints the numbers in docs/CLUSTER.md. One member per node, each in its own room
    (room-a on node a, ...); every node broadcasts 10 packets to each of the three rooms."""
    members = [clients(node) for node in cluster]
    for member, node in zip(members, cluster):
        assert member.call("join", "room-" + node.name) == "room-" + node.name
    senders = [clients(node) for node in cluster]
    before = [s.call("metrics")["receivedBroadcasts"] for s in senders]
    per_room = 10
    for sender in senders:
        for node in cluster:
            for index in range(per_room):
                assert sender.call("broadcast", {"room": "room-" + node.name, "payload": index}) is True
    expected_per_member = per_room * len(cluster)
    assert wait_until(lambda: all(len(_payloads(m)) >= expected_per_member for m in members), 15)
    _settle()
    for member in members:
        assert sorted(_payloads(member)) == sorted(list(range(per_room)) * len(cluster))
    delivered = [s.call("metrics")["receivedBroadcasts"] - b for s, b in zip(senders, before)]
    room_aware = "room-aware" in request.node.callspec.id
    print(f"\n{'room-aware' if room_aware else 'fan-out'}: room broadcasts delivered to each node "
          f"{dict(zip((n.name for n in cluster), delivered))} for {per_room * len(cluster) ** 2} broadcasts")
    other_nodes = len(cluster) - 1
    # Fan-out: every broadcast of the two other nodes. Room-aware: only those to its own room.
    expected = per_room * other_nodes if room_aware else per_room * len(cluster) * other_nodes
    assert delivered == [expected] * len(cluster)


@pytest.mark.parametrize("cluster", [("--room-aware",)], indirect=True)
def test_recovered_socket_gets_room_broadcasts_sent_right_after_it_reconnected(cluster, clients):
    """A socket restored on another node comes back in its rooms; with room-aware routing
    that node may have no binding for them yet. Right after the CONNECT reply, a broadcast
    from a third node to the room must reach it."""
    node_a, node_b, node_c = cluster
    sender_a, sender_c = clients(node_a), clients(node_c)
    for index in range(4):
        room = f"rec-{index}"
        raw = RawSocketIOClient(node_a)
        sid, pid = raw.connect_reply["sid"], raw.connect_reply["pid"]
        assert raw.call("join", room) == [room]
        assert sender_a.call("broadcast", {"room": room, "payload": "before"}) is True
        offset = raw.read_events(1, 10)[-1][-1]
        raw.close()
        time.sleep(0.5)
        again = RawSocketIOClient(node_b, auth={"pid": pid, "offset": offset})
        try:
            assert again.connect_reply["sid"] == sid, f"round {index}: not recovered"
            assert sender_c.call("broadcast", {"room": room, "payload": f"live-{index}"}) is True
            events = again.read_events(1, 5)
            assert [event[1] for event in events] == [f"live-{index}"], f"round {index}"
        finally:
            again.close()


def _cut_transport(raw):
    """Drops the TCP connection without a Socket.IO or WebSocket goodbye, as a network cut."""
    import socket as _socket

    raw.ws.sock.shutdown(_socket.SHUT_RDWR)
    raw.ws.sock.close()


@pytest.mark.parametrize("cluster", [(), ("--room-aware",)], indirect=True, ids=["fanout", "room-aware"])
def test_restore_on_another_node_under_steady_traffic_misses_and_repeats_nothing(cluster, clients):
    """Every node emits steadily (c at 100 packets/s, a and b at 50/s) while a client on node a
    loses its transport and restores on node b: packets from several senders arrive within
    milliseconds of the cut on both sides of it. Every packet exactly once, in order per
    sender, `recovered`: all nodes deliver recoverable packets in the recovery stream's order,
    so the client's offset says where it stood for every sender (docs/CLUSTER.md)."""
    node_a, node_b, node_c = cluster
    counts = {"c": 350, "a": 175, "b": 175}
    raw = RawSocketIOClient(node_a)
    sid, pid = raw.connect_reply["sid"], raw.connect_reply["pid"]
    senders = {"a": clients(node_a), "b": clients(node_b), "c": clients(node_c)}
    for name, count in counts.items():
        interval = 10 if name == "c" else 20
        assert senders[name].call("start-traffic", {"count": count, "interval_ms": interval}) is True

    def traffic(events):
        return [(event[1]["node"], event[1]["seq"]) for event in events if event[0] == "traffic"]

    # About a second of traffic on a, then the cut: whatever was still unread is missed.
    raw.read_events(160, 10)
    before = list(raw.events)
    last_offset = before[-1][-1]
    _cut_transport(raw)
    time.sleep(0.5)
    again = RawSocketIOClient(node_b, auth={"pid": pid, "offset": last_offset})
    try:
        recovered = again.connect_reply.get("pid") == pid  # as socket.io-client decides `recovered`
        assert recovered and again.connect_reply["sid"] == sid, "not recovered"
        total = sum(counts.values())
        again.read_events(total - len(before), 20)  # below the 25 s ping interval (see _next)
        time.sleep(0.7)
        again.read_events(total + 1, 0.3)  # anything extra would show up here
        received = traffic(before) + traffic(again.events)
        assert len(received) == len(set(received)), f"duplicated: {sorted(p for p in set(received) if received.count(p) > 1)[:10]}"
        for name, count in counts.items():
            sequence = [seq for origin, seq in received if origin == name]
            missing = sorted(set(range(count)) - set(sequence))
            assert not missing, f"from {name}: {len(missing)} missing, e.g. {missing[:10]}"
            assert sequence == list(range(count)), f"from {name}: out of order"
        assert len(again.events) == len(traffic(again.events)), "nothing but traffic"
    finally:
        again.close()
