"""Connection state recovery across nodes: a client that lost its transport on one node
restores its session on another, once, missing and repeating nothing."""
import time

import pytest

from .clusterkit import RawSocketIOClient, cut_transport


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
    cut_transport(raw)
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
