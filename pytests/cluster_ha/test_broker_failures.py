"""The chat on a 3-node RabbitMQ cluster loses a broker node under steady acknowledged traffic
and loses no message (docs/CLUSTER.md, "What survives which broker failure").

Every test: 4 users per chat node (12), one acknowledged message each every 1.2 s (10/s in
all), all in one room, so every user must receive every acknowledged message exactly once.
"""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import Traffic, User, is_ready

SETTLE_SECONDS = 20


def wait_for_delivery(traffic: Traffic, timeout: float = SETTLE_SECONDS) -> None:
    """Until every user has every acknowledged message (or the timeout: the asserts tell)."""
    acked = set(traffic.acked())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(acked <= {text for text, _ in user.received} for user in traffic.users):
            return
        time.sleep(0.5)


def wait_all_ready(nodes, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(is_ready(node) for node in nodes):
            return time.monotonic() - started
        time.sleep(0.25)
    return float("inf")


def check_history(nodes, traffic: Traffic) -> None:
    """A user who arrives now gets, on every node, every acknowledged message of the run in
    its history, once each."""
    acked = set(traffic.acked())
    for index, node in enumerate(nodes):
        newcomer = User(index, node, f"{traffic.tag}-late-{index}")
        try:
            deadline = time.monotonic() + 10
            while newcomer.history is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert newcomer.history is not None, f"node {index}: no welcome"
            mine = [text for text in newcomer.history if text.startswith(traffic.tag + "-")]
            assert len(mine) == len(set(mine)), f"node {index}: history repeats messages"
            missing = acked - set(mine)
            assert not missing, f"node {index}: {len(missing)} acknowledged messages missing from history, e.g. {sorted(missing)[:3]}"
        finally:
            newcomer.close()


def report(traffic: Traffic, title: str, since: float, until: float, back: float | None) -> tuple[float, str]:
    lost, duplicates = traffic.losses_and_duplicates()
    silence, where = traffic.longest_silence(since, until)
    ready_after = traffic.not_ready_after(back) if back is not None else {}
    print(f"\n[{title}] acked {len(traffic.acked())}, unacked {sum(u.unacked for u in traffic.users)}, "
          f"lost {sum(len(v) for v in lost.values())}, duplicates {sum(duplicates.values())}, "
          f"longest silence {silence:.1f}s ({where}), not ready (s) {traffic.not_ready_seconds()}, "
          f"ready after the broker's return (s) {ready_after}")
    return silence, where


def assert_no_loss(traffic: Traffic) -> None:
    for user in traffic.users:
        assert user.client.connected, f"{user.name} was disconnected"
    lost, duplicates = traffic.losses_and_duplicates()
    total_lost = sum(len(v) for v in lost.values())
    assert total_lost == 0, f"{total_lost} acknowledged messages lost: " + \
        ", ".join(f"{name}: {v[:3]}" for name, v in lost.items() if v)
    assert sum(duplicates.values()) == 0, f"duplicates: {duplicates}"


def run_broker_outage(broker_cluster, chat_nodes, tag: str, outage, settle: float,
                      delivery_timeout: float = SETTLE_SECONDS, max_silence: float | None = 10) -> None:
    """Steady traffic through a broker outage, checked: `outage()` kills brokers and
    returns (their numbers, a title); they are restarted together, the traffic runs `settle` s
    more once every chat node is ready, and then every node must have been ready within 30 s
    of their return, no acknowledged message lost or repeated, no user cut off from a node for
    more than `max_silence` s (None: not checked), every message in every node's history."""
    traffic = Traffic(chat_nodes, tag=tag)
    try:
        killed, title = outage()
        restarts = [threading.Thread(target=broker_cluster.restart, args=(n,)) for n in killed]
        for thread in restarts:
            thread.start()
        for thread in restarts:
            thread.join()
        back = time.monotonic()
        ready_in = wait_all_ready(chat_nodes, 30)
        time.sleep(settle)
        traffic.stop()
        wait_for_delivery(traffic, delivery_timeout)
        silence, where = report(traffic, title, traffic.started + 2, traffic.stopped - 1, back)
        assert ready_in <= 30, f"not every node ready within 30 s of the return of {title}"
        assert_no_loss(traffic)
        if max_silence is not None:
            assert silence <= max_silence, f"cut off for {silence:.1f}s: {where}"
        check_history(chat_nodes, traffic)
    finally:
        traffic.stop()
        traffic.close()


def test_killing_the_recovery_stream_leader_loses_nothing(broker_cluster, chat_nodes):
    def outage():
        time.sleep(5)
        leader = broker_cluster.leader()
        broker_cluster.kill(leader)
        time.sleep(12)
        return [leader], f"SIGKILL of broker {leader}, the recovery stream's leader"

    run_broker_outage(broker_cluster, chat_nodes, "leader", outage, settle=4)


def test_killing_a_broker_that_leads_nothing_loses_nothing(broker_cluster, chat_nodes):
    def outage():
        time.sleep(4)
        leaders = {broker_cluster.leader(), broker_cluster.leader("socket.io#/admin#recovery")}
        victim = next((n for n in (1, 2, 3) if n not in leaders), None)
        if victim is None:
            pytest.skip(f"every broker leads a stream ({leaders})")
        broker_cluster.kill(victim)
        time.sleep(6)
        return [victim], f"SIGKILL of broker {victim}, a follower"

    run_broker_outage(broker_cluster, chat_nodes, "follower", outage, settle=3)


def test_two_brokers_down_holds_messages_until_a_majority_is_back(broker_cluster, chat_nodes):
    """With one broker of three left nothing is served (streams need a majority, and the
    survivor pauses: pause_minority); the nodes say so on /readyz, keep their clients and
    hold what they acknowledged, and deliver it all once two brokers are back."""
    not_ready = []

    def outage():
        time.sleep(4)
        first = broker_cluster.leader()
        second = next(n for n in (1, 2, 3) if n != first)
        broker_cluster.kill(first)
        time.sleep(4)
        broker_cluster.kill(second)
        time.sleep(4)
        not_ready.extend(not is_ready(node) for node in chat_nodes)
        time.sleep(4)
        return [first, second], f"SIGKILL of brokers {first} then {second}"

    run_broker_outage(broker_cluster, chat_nodes, "majority", outage, settle=3, delivery_timeout=30, max_silence=None)
    assert all(not_ready), "a node said ready with one broker of three left"
