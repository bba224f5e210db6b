"""A node killed, the broker restarted, the recovery stream deleted, every connection closed:
what the cluster loses (nothing confirmed) and how it reports it."""
import signal
import time

from .clusterkit import is_ready, node_metrics, payloads, settle, traffic_seen
from .conftest import Node, list_queues, rabbitmq, wait_until


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


def test_broker_restart_under_steady_traffic_loses_and_duplicates_nothing(cluster, clients):
    observers = [clients(node) for node in cluster for _ in range(2)]
    senders = [clients(node) for node in cluster]
    count, interval_ms = 300, 50  # 15 s of traffic from every node
    for sender in senders:
        assert sender.call("start-traffic", {"count": count, "interval_ms": interval_ms}) is True
    time.sleep(2)
    rabbitmq("stop-app")
    assert wait_until(lambda: not any(is_ready(node) for node in cluster), 5), "/readyz still 200 with the broker away"
    time.sleep(10)
    rabbitmq("start-app")
    returned = time.monotonic()
    assert wait_until(lambda: all(is_ready(node) for node in cluster), 10, interval=0.2), "not ready within 10 s of the broker's return"
    ready_after = time.monotonic() - returned
    expected = {(node.name, seq) for node in cluster for seq in range(count)}

    done = wait_until(lambda: all(len(traffic_seen(o)) >= len(expected) for o in observers), 20)
    settle()
    metrics = [node_metrics(node) for node in cluster]
    overflow = sum(m["outboxOverflow"] for m in metrics)
    print(f"\nready {ready_after:.1f}s after the broker returned; metrics: {metrics}")
    for observer in observers:
        assert observer.sio.connected, "clients stay connected while the broker is away"
        received = traffic_seen(observer)
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
    assert wait_until(lambda: len(payloads(observer)) >= 20, 10)
    node_queue = next(q for q in list_queues() if q.endswith("#/#" + node_a.node_id))
    prefix = node_queue[: -len("#/#" + node_a.node_id)]  # this test's own (earlier tests' streams remain)
    stream = prefix + "#/#recovery"
    assert stream in list_queues()
    rabbitmq("delete-queue", stream)
    assert wait_until(lambda: not any(is_ready(node) for node in cluster), 10), "nodes still ready without their stream"

    node_c.stop()
    cluster[2] = Node("c", node_c.port, prefix)  # declares the stream again (stopped by the fixture)
    assert wait_until(lambda: all(is_ready(node) for node in cluster), 15), "not ready again on the new stream"
    late = clients(cluster[2])
    for index in range(20):
        assert sender.call("broadcast", {"payload": f"after-{index}"}) is True
    expected = [f"before-{index}" for index in range(20)] + [f"after-{index}" for index in range(20)]
    assert wait_until(lambda: len(payloads(observer)) >= 40 and len(payloads(late)) >= 20, 10)
    settle()
    assert payloads(observer) == expected
    assert payloads(late) == expected[20:]
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

    done = wait_until(lambda: all(len(traffic_seen(o)) >= len(expected) for o in observers), 30)
    settle()
    metrics = [node_metrics(node) for node in cluster]
    print(f"\nafter a forced close: {metrics}")
    for node in cluster:
        assert any("RabbitMQ connection recovered" in line for line in node.lines), f"{node.name} never lost its connection"
    for observer in observers:
        received = traffic_seen(observer)
        assert len(received) == len(set(received)), f"{observer.node.name}: duplicates"
        assert set(received) == expected, f"{observer.node.name}: {len(expected - set(received))} missing"
        for node in cluster:
            sequence = [seq for origin, seq in received if origin == node.name]
            assert sequence == sorted(sequence), f"{observer.node.name}: out of order from {node.name}"
    assert done
    assert all(is_ready(node) for node in cluster)
