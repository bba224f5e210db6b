"""Three Socket.IO nodes clustered over RabbitMQ, driven by python-socketio clients: broadcasts,
acks, server-side emits and remote socket operations across nodes."""
import time

from .clusterkit import node_metrics, payloads, settle
from .conftest import wait_until


def test_broadcast_to_all_from_each_node_reaches_every_client_exactly_once(cluster, clients):
    everyone = [clients(node) for node in cluster for _ in range(2)]
    for index, node in enumerate(cluster):
        assert everyone[index * 2].call("broadcast", {"payload": {"from": node.name}}) is True
    expected = sorted(node.name for node in cluster)
    assert wait_until(lambda: all(len(payloads(c)) >= 3 for c in everyone), 10)
    settle()
    for client in everyone:
        assert sorted(p["from"] for p in payloads(client)) == expected, client.node.name


def test_broadcast_to_room_with_except_from_each_node(cluster, clients):
    a1, b1, c1 = (clients(node) for node in cluster)
    a2, b2, c2 = (clients(node) for node in cluster)
    for member in (a1, b1, c1):
        assert member.call("join", "r") == "r"
    assert c1.call("join", "muted") == "muted"
    for sender, tag in ((a2, "from-a"), (b2, "from-b"), (c2, "from-c")):
        assert sender.call("broadcast", {"room": "r", "except": "muted", "payload": tag}) is True
    assert wait_until(lambda: len(payloads(a1)) >= 3 and len(payloads(b1)) >= 3, 10)
    settle()
    assert sorted(payloads(a1)) == ["from-a", "from-b", "from-c"]
    assert sorted(payloads(b1)) == ["from-a", "from-b", "from-c"]
    assert payloads(c1) == [], "excepted room must not receive"
    for outsider in (a2, b2, c2):
        assert payloads(outsider) == []
    # The same room without except reaches the third member too, once.
    assert a2.call("broadcast", {"room": "r", "payload": "all-members"}) is True
    assert wait_until(lambda: "all-members" in payloads(c1), 10)
    settle()
    for member in (a1, b1, c1):
        assert payloads(member).count("all-members") == 1


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
    assert wait_until(lambda: payloads(c1) == ["to-x"], 10)
    assert a1.call("remote-leave", {"target": c1.sid, "room": "x"}) is True
    assert wait_until(lambda: a1.call("fetch-sockets", {"room": "x"}) == [], 5)
    assert b1.call("broadcast", {"room": "x", "payload": "after-leave"}) is True
    settle()
    assert payloads(c1) == ["to-x"]
    assert a1.call("remote-disconnect", {"target": b1.sid}) is True
    assert wait_until(lambda: not b1.sio.connected, 10), "remote disconnect did not reach node b"
    assert a1.sio.connected and c1.sio.connected


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


def test_measure_cross_node_broadcast_rate_and_publish_latency(cluster, clients):
    """Prints numbers for docs/CLUSTER.md; asserts only that everything arrived once."""
    observers = [clients(node) for node in cluster]
    sender = clients(cluster[0])
    count = 1000
    started = time.monotonic()
    assert sender.call("start-traffic", {"count": count, "interval_ms": 1}) is True

    def seen(client):
        return [p["seq"] for p in payloads(client, "traffic")]

    assert wait_until(lambda: all(len(seen(o)) >= count for o in observers), 60)
    elapsed = time.monotonic() - started
    settle()
    for observer in observers:
        assert seen(observer) == list(range(count))
    metrics = node_metrics(cluster[0])
    print(f"\n{count} broadcasts from node a reached nodes b and c in {elapsed:.2f}s "
          f"({count / elapsed:.0f}/s, emitter paced at <=1000/s); publish latency mean "
          f"{metrics['meanPublishLatencyMs']:.2f} ms, max {metrics['maxPublishLatencyMs']:.1f} ms; "
          f"{metrics['published']} messages in {metrics['publishedBatches']} AMQP publishes")
