"""A storm of malformed and random Engine.IO / Socket.IO input over many connections.

Meanwhile two well-behaved clients (WebSocket, polling then upgrade) keep exchanging acked
messages. Afterwards: the server process is alive, both clients still work, a new client
connects, and the resident memory has come back near its baseline.

Every loop here is bounded by a count and by a deadline. The random seed is printed and
can be fixed with FUZZ_SEED to replay a failure.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from interop.clientkit import TRANSPORT_MODES, RecordingClient
from interop.rawclient import RawWebSocket

STORM_SCRIPT = Path(__file__).resolve().parent / "stormlib.py"
STORM_PROCESSES = 2
THREADS_PER_PROCESS = 2
ATTACKS_PER_THREAD = 220
STORM_DEADLINE_SECONDS = 90
MIN_PACKETS_SENT = 3000
RSS_GROWTH_LIMIT_KIB = 30 * 1024
SETTLE_SECONDS = 4.0


def run_storm(url: str, seed: int) -> dict:
    """Runs the storm in separate processes and sums what they report."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(STORM_SCRIPT), url, str(seed), str(index), str(THREADS_PER_PROCESS),
             str(ATTACKS_PER_THREAD), str(STORM_DEADLINE_SECONDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(STORM_PROCESSES)
    ]
    totals = {"packets": 0, "connections": 0, "errors": []}
    for process in processes:
        try:
            out, err = process.communicate(timeout=STORM_DEADLINE_SECONDS + 60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        if process.returncode != 0 or not out.strip():
            totals["errors"].append(f"storm process exited {process.returncode}: {err[-2000:]}")
            continue
        report = json.loads(out.strip().splitlines()[-1])
        totals["packets"] += report["packets"]
        totals["connections"] += report["connections"]
        totals["errors"] += report["errors"]
    return totals


class WellBehavedPair:
    """Two official clients that keep doing acked round trips during the storm."""

    def __init__(self, url: str):
        self.clients = []
        # websocket-only and polling-then-upgrade. Not polling-only: its pong needs a GET and a
        # POST within the 200 ms pingTimeout, which a loaded 2-core machine (load average 17
        # measured while other builds ran) misses now and then whatever the server does.
        for mode in (TRANSPORT_MODES[0], TRANSPORT_MODES[2]):
            client = RecordingClient()
            client.connect(url, mode)
            client.mode = mode
            self.clients.append(client)
        self.round_trips = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._exchange, daemon=True)

    def _exchange(self) -> None:
        started = time.monotonic()
        for n in range(100_000):  # bounded; normally stopped long before
            if self._stop.is_set():
                return
            for client in self.clients:
                try:
                    echoed = client.call("message-with-ack", n, {"n": n})
                    if echoed != (n, {"n": n}):
                        self.failures.append(f"{client.mode} round trip {n} at {time.monotonic() - started:.1f}s: got {echoed!r}")
                    else:
                        self.round_trips += 1
                except Exception as error:
                    reasons = list(client.disconnect_reasons["/"].queue)
                    self.failures.append(
                        f"{client.mode} round trip {n} at {time.monotonic() - started:.1f}s: {error!r} "
                        f"(disconnect reasons {reasons})"
                    )
            if len(self.failures) > 20:
                return
            time.sleep(0.02)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def disconnect(self) -> None:
        for client in self.clients:
            client.disconnect()


@pytest.mark.slow
def test_random_storm_leaves_server_alive_and_memory_flat(start_sio_server):
    # The contract's 200 ms pingTimeout is not what this test is about, and a loaded 2-core
    # machine misses it now and then (a polling-then-upgrade client then drops with "transport
    # error" whatever the storm does): 2 s, still far below the settle time, so sessions the
    # storm abandons are gone before memory is read.
    server = start_sio_server("sio-conformance-fuzz", ("--ping-timeout", "2000"))
    seed = int(os.environ.get("FUZZ_SEED", str(random.randrange(1, 10**9))))
    print(f"FUZZ_SEED={seed}")

    # Warm up so lazily allocated pools count in the baseline, not in the growth.
    for _ in range(20):
        warm = RawWebSocket(server.url)
        warm.connect_namespace("/")
        warm.send_text('421["message-with-ack","warm"]')
        assert warm.receive() == '431["warm"]'
        warm.close()
    pair = WellBehavedPair(server.url)
    time.sleep(1.0)
    baseline_kib = server.rss_kib()

    pair.start()
    storm = run_storm(server.url, seed)
    pair.stop()

    assert not storm["errors"], f"the storm itself broke (seed {seed}): {storm['errors'][:3]}"
    assert storm["packets"] >= MIN_PACKETS_SENT, f"only {storm['packets']} packets sent in time"
    assert server.is_alive(), f"server died during the storm (seed {seed}):\n{server.tail()}"

    assert pair.failures == [], f"well-behaved clients failed during the storm (seed {seed}): {pair.failures[:5]}"
    assert pair.round_trips > 0
    for client in pair.clients:
        assert client.client.connected
        assert client.call("message-with-ack", "after storm") == "after storm"
    pair.disconnect()

    fresh = RawWebSocket(server.url)
    fresh.connect_namespace("/")
    fresh.send_text('42["message","fresh"]')
    assert fresh.receive() == '42["message-back","fresh"]'
    fresh.close()

    time.sleep(SETTLE_SECONDS)
    after_kib = server.rss_kib()
    print(
        f"storm: seed={seed} packets={storm['packets']} connections={storm['connections']} "
        f"good_round_trips={pair.round_trips} rss_baseline_kib={baseline_kib} rss_after_kib={after_kib}"
    )
    assert after_kib - baseline_kib <= RSS_GROWTH_LIMIT_KIB, (
        f"RSS grew from {baseline_kib} KiB to {after_kib} KiB after the storm (seed {seed})"
    )
    assert server.is_alive()
