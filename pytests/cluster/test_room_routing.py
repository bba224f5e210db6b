"""Room broadcasts across nodes, with fan-out and with room-aware routing (bindings per room)."""
import pytest

from .clusterkit import payloads, settle
from .conftest import wait_until


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
        return [p for p in payloads(member) if isinstance(p, int)]

    assert wait_until(lambda: len(counted()) >= 40, 10)
    settle()
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
    wait_until(lambda: len(payloads(member)) >= rounds, 10)
    settle()
    assert sorted(payloads(member)) == sorted(expected), f"missed {sorted(set(expected) - set(payloads(member)))}"


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
        if not wait_until(lambda: f"in-{index}" in payloads(member), 5):
            break
        assert member.call("leave", "cycle") == "cycle"
        # Published while the room is left; it may still arrive after the next join (then it is
        # rightly delivered), so only the "in" packets are counted.
        assert sender.call("broadcast", {"room": "cycle", "payload": f"out-{index}"}) is True
    settle()
    received = [p for p in payloads(member) if p.startswith("in-")]
    expected = [f"in-{index}" for index in range(rounds)]
    assert received == expected, f"missed {sorted(set(expected) - set(received))}"


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
    assert wait_until(lambda: all(len(payloads(m)) >= expected_per_member for m in members), 15)
    settle()
    for member in members:
        assert sorted(payloads(member)) == sorted(list(range(per_room)) * len(cluster))
    delivered = [s.call("metrics")["receivedBroadcasts"] - b for s, b in zip(senders, before)]
    room_aware = "room-aware" in request.node.callspec.id
    print(f"\n{'room-aware' if room_aware else 'fan-out'}: room broadcasts delivered to each node "
          f"{dict(zip((n.name for n in cluster), delivered))} for {per_room * len(cluster) ** 2} broadcasts")
    other_nodes = len(cluster) - 1
    # Fan-out: every broadcast of the two other nodes. Room-aware: only those to its own room.
    expected = per_room * other_nodes if room_aware else per_room * len(cluster) * other_nodes
    assert delivered == [expected] * len(cluster)
