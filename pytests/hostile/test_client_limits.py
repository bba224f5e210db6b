"""Limits that follow a hostile client across connections: rate limits per user and per
address that reconnecting does not reset (attackkit.py)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from interop.rawclient import RECORD_SEPARATOR
from chat.conftest import ChatUser, start_chat

from .attackkit import FAST_PINGS, Attacker, assert_node_serves, metric


@pytest.fixture(scope="module")
def limited_node():
    """In-memory chat with small limits, so floods show within a second."""
    node = start_chat("hostile-limits", "--adapter", "memory", *FAST_PINGS, "--rate-limit", "1", "--rate-burst", "5",
                      "--connect-rate-limit", "5", "--connect-burst", "20")
    try:
        yield node
        assert node.is_alive(), f"the node died during the tests:\n{node.tail()}"
    finally:
        node.stop()


def flood_messages(node, source_ip: str, connections: int, per_connection: int, name: str | None) -> tuple[int, int]:
    """`connections` sessions one after the other from one address, each sending
    `per_connection` messages in one POST; returns (accepted, refused as rate_limited)."""
    room = "flood-" + uuid.uuid4().hex[:8]
    accepted = refused = 0
    for _ in range(connections):
        attacker = Attacker(node.url, source_ip)
        attacker.connect({"room": room, **({"name": name} if name else {})})
        attacker.post(RECORD_SEPARATOR.join(f'42{i}["message","m{i}"]' for i in range(per_connection)))
        attacker.collect(lambda _: len(attacker.acks()) == per_connection)
        for reply in attacker.acks().values():
            if reply[0]["ok"]:
                accepted += 1
            elif reply[0]["error"]["code"] == "rate_limited":
                refused += 1
        attacker.post("41" + RECORD_SEPARATOR + "1")  # leave and close
    return accepted, refused


def test_reconnecting_does_not_reset_the_message_rate_limit(limited_node):
    # One user, 10 connections x 10 messages: the per-connection limit let 5 of each through (50).
    accepted, refused = flood_messages(limited_node, "127.0.0.31", connections=10, per_connection=10, name="flooder")
    assert accepted <= 12, f"{accepted} of 100 accepted across reconnects (burst 5, 1/s)"
    assert refused >= 85
    # New guest names from one address: the address's bucket (4 users' worth: burst 20, 4/s).
    accepted, refused = flood_messages(limited_node, "127.0.0.32", connections=10, per_connection=10, name=None)
    assert accepted <= 32, f"{accepted} of 100 accepted from one address under new names"
    assert refused >= 65
    assert_node_serves(limited_node)


def test_5000_typing_events_in_one_post_are_not_all_relayed(limited_node):
    room = "typing-" + uuid.uuid4().hex[:8]
    watcher = ChatUser(limited_node.url, name="watcher", room=room)
    watcher.wait_for(lambda: watcher.welcomes)
    dropped_before = metric(limited_node, "chat_events_rate_limited_total")
    attacker = Attacker(limited_node.url, "127.0.0.33")
    attacker.connect({"room": room, "name": "typist"})
    attacker.post(RECORD_SEPARATOR.join(['42["typing",true]'] * 5_000))
    time.sleep(1.5)
    relayed = [t for t in watcher.typing if t["name"] == "typist"]
    assert 1 <= len(relayed) <= 30, f"{len(relayed)} of 5,000 typing events relayed"
    assert metric(limited_node, "chat_events_rate_limited_total") - dropped_before >= 4_900
    watcher.close()
    assert_node_serves(limited_node)


def test_join_and_set_name_floods_are_refused(limited_node):
    attacker = Attacker(limited_node.url, "127.0.0.34")
    attacker.connect({"name": "mover"})
    packets = [f'42{i}["join",{{"room":"r{i}"}}]' if i % 2 else f'42{i}["set-name","n{i}"]' for i in range(100)]
    attacker.post(RECORD_SEPARATOR.join(packets))
    attacker.collect(lambda _: len(attacker.acks()) == 100)
    limited = [a for a in attacker.acks().values() if not a[0]["ok"] and a[0]["error"]["code"] == "rate_limited"]
    assert len(limited) >= 80, f"only {len(limited)} of 100 joins and renames were limited"
    assert_node_serves(limited_node)


def test_connects_and_recovery_claims_are_limited_per_address(limited_node):
    # Burst 20, 5/s for this address; 60 CONNECTs (half of them recovery claims) in a row.
    outcomes = []
    for i in range(60):
        attacker = Attacker(limited_node.url, "127.0.0.35")
        auth = {"pid": "A" * 20, "offset": "abc-1"} if i % 2 else {"name": f"c{i}"}
        attacker.post("40" + json.dumps(auth))
        attacker.collect(lambda packets: any(p.startswith("40{") or p.startswith("44{") for p in packets))
        outcomes.append(next(p[:2] for p in attacker.received if p[:2] in ("40", "44")))
        refusal = [p for p in attacker.received if p.startswith("44{")]
        if refusal:
            assert json.loads(refusal[0][2:])["data"]["code"] == "rate_limited"
        attacker.post("1")
    assert outcomes.count("40") <= 32, outcomes
    assert outcomes.count("44") >= 28, outcomes
    assert metric(limited_node, "chat_connects_rate_limited_total") >= 28
    # Another address is not affected.
    other = Attacker(limited_node.url, "127.0.0.36")
    other.connect({"name": "neighbour"})
    assert_node_serves(limited_node)


# --- secrets and configuration ------------------------------------------------------------
