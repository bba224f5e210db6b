"""Connection state recovery when the node holding the clients is killed (SIGKILL): it never
sees the disconnects, so only the session records it wrote ahead (docs/CLUSTER.md, "A crashed
node's clients") let the other nodes restore its clients."""
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .clusterkit import RawSocketIOClient


def _room_payloads(events):
    return [event[1] for event in events if event[0] == "broadcast"]


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "drained"])
def test_clients_of_a_stopped_node_are_restored_on_the_others_while_the_room_keeps_talking(cluster, clients, stop_signal):
    """50 clients on node a, each in room "crash" with its own `data`; node c broadcasts to the
    room 20 times a second. Node a is SIGKILLed (it never sees them go: only the records it wrote
    ahead tell the others) or drained with SIGTERM once every client has read a few packets; each
    client reconnects to b or c with its pid and last offset while the room keeps talking.
    Every one is recovered (same sid), is still in the room with its data, and gets every
    packet once and in order: those it had, the missed ones, then live ones."""
    node_a, node_b, node_c = cluster
    count = 50
    raws = [RawSocketIOClient(node_a) for _ in range(count)]
    for index, raw in enumerate(raws):
        assert raw.call("join", "crash", ack_id=1) == ["crash"]
        assert raw.call("set-data", {"tag": index}, ack_id=2) == [True]
    sessions = [(raw.connect_reply["sid"], raw.connect_reply["pid"]) for raw in raws]

    total = 120
    sender = clients(node_c)
    sent = []

    def talk():
        for seq in range(total):
            assert sender.call("broadcast", {"room": "crash", "payload": seq}) is True
            sent.append(seq)
            time.sleep(0.05)

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    for raw in raws:
        assert len(raw.read_events(5, 10)) >= 5
    before = [list(raw.events) for raw in raws]
    offsets = [events[-1][-1] for events in before]

    node_a.stop(stop_signal)
    killed_at = time.monotonic()
    for raw in raws:
        raw.ws.close()

    def reconnect(index):
        sid, pid = sessions[index]
        node = (node_b, node_c)[index % 2]
        return RawSocketIOClient(node, auth={"pid": pid, "offset": offsets[index]})

    with ThreadPoolExecutor(10) as pool:
        again = list(pool.map(reconnect, range(count)))
    restored_within = time.monotonic() - killed_at
    try:
        recovered = [index for index, raw in enumerate(again)
                     if raw.connect_reply.get("pid") == sessions[index][1] and raw.connect_reply.get("sid") == sessions[index][0]]
        assert len(recovered) == count, f"recovered {len(recovered)} of {count} (within {restored_within:.1f} s)"
        print(f"{count} of {count} recovered on the other nodes within {restored_within:.2f} s of the {stop_signal.name}")
        assert len(sent) < total, "the room went quiet before every client was back: the test proves less than it says"

        # Rooms and data are back, as the other nodes see them.
        described = {socket["id"]: socket for socket in sender.call("fetch-sockets", {"room": "crash"})}
        for index, (sid, _) in enumerate(sessions):
            assert sid in described, f"client {index} is not in its room any more"
            assert described[sid]["data"].get("tag") == index, f"client {index} lost its data"

        talker.join(30)
        assert len(sent) == total
        for index, raw in enumerate(again):
            raw.read_events(total - len(_room_payloads(before[index])), 20)
        time.sleep(0.7)
        for index, raw in enumerate(again):
            raw.read_events(total + 1, 0.05)  # anything extra would show up here
            received = _room_payloads(before[index]) + _room_payloads(raw.events)
            assert received == list(range(total)), (
                f"client {index}: {len(received)} packets, missing {sorted(set(range(total)) - set(received))[:10]}, "
                f"repeated {sorted(p for p in set(received) if received.count(p) > 1)[:10]}")
    finally:
        for raw in again:
            raw.close()
