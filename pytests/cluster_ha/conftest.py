"""Fixtures for the broker-failure tests: a 3-node RabbitMQ cluster (scripts/rabbitmq cluster,
AMQP on 5682/5692/5702), three `chat` nodes each given all three URLs rotated (so each starts
on a different broker), and steady acknowledged traffic from python-socketio users.

The cluster is started here and stopped at the end when this suite started it; a vhost of
the run's own keeps its streams apart from anything else on that cluster.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid

import pytest
import requests
import socketio

from conftest import REPO_ROOT, SioServerProcess
from chat.conftest import chat_binary

RABBITMQ = str(REPO_ROOT / "scripts" / "rabbitmq")
BROKER_PORTS = [5682, 5692, 5702]
# This suite's own port range (3310-3312) for the chat nodes.
CHAT_BASE_PORT = int(os.environ.get("HA_CHAT_BASE_PORT", "3310"))
RECOVERY_STREAM = "socket.io#/#recovery"


def cluster_command(*args: str, timeout: float = 240) -> str:
    result = subprocess.run([RABBITMQ, "cluster", *args], capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"scripts/rabbitmq cluster {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


class BrokerCluster:
    def __init__(self, vhost: str):
        self.vhost = vhost

    def urls_for(self, index: int) -> str:
        """All three brokers, starting at `index`: chat node i starts on broker i."""
        ports = BROKER_PORTS[index:] + BROKER_PORTS[:index]
        return ",".join(f"amqp://guest:guest@127.0.0.1:{port}/{self.vhost}" for port in ports)

    def leader(self, queue: str = RECOVERY_STREAM) -> int:
        return int(cluster_command("leader", queue, self.vhost))

    def kill(self, number: int) -> None:
        cluster_command("kill", str(number))

    def restart(self, number: int) -> None:
        cluster_command("restart", str(number))


@pytest.fixture(scope="session")
def broker_cluster():
    if not os.path.exists("/usr/sbin/rabbitmq-server") and os.environ.get("CI") != "true":
        pytest.skip("rabbitmq-server is not installed (scripts/test installs it)")
    was_running = subprocess.run([RABBITMQ, "cluster", "status"], capture_output=True).returncode == 0
    cluster_command("start", timeout=400)
    vhost = "ha-" + uuid.uuid4().hex[:8]
    for number in (1, 2, 3):
        # Any running node will do (an earlier run may have left one down).
        try:
            cluster_command("ctl", str(number), "-q", "add_vhost", vhost)
            cluster_command("ctl", str(number), "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            break
        except AssertionError:
            continue
    yield BrokerCluster(vhost)
    for number in (1, 2, 3):
        subprocess.run([RABBITMQ, "cluster", "restart", str(number)], capture_output=True, timeout=240)
    subprocess.run([RABBITMQ, "cluster", "ctl", "1", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)
    if not was_running:
        cluster_command("stop", timeout=120)


def is_ready(node) -> bool:
    try:
        return requests.get(node.url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def chat_nodes(broker_cluster):
    nodes = []
    try:
        for index in range(3):
            nodes.append(SioServerProcess(
                chat_binary(), name=f"chat-ha-{index}", port=CHAT_BASE_PORT + index,
                extra_args=("--adapter", "rabbitmq", "--node-name", f"ha{index}", "--rate-limit", "1000",
                            "--rate-burst", "1000", "--history-length", "5000", "--history-bytes", str(8 << 20)),
                env={"AMQP_URL": broker_cluster.urls_for(index)}))
        for node in nodes:
            deadline = time.monotonic() + 60
            while not is_ready(node):
                assert time.monotonic() < deadline, f"{node.url} never became ready:\n{node.tail()}"
                time.sleep(0.3)
        yield nodes
    finally:
        for node in nodes:
            alive = node.is_alive()
            node.stop()
            assert alive, f"chat node died:\n{node.tail()}"


class User:
    """A python-socketio user on one chat node that sends acknowledged messages and records
    what it receives, with the time of arrival."""

    def __init__(self, node_index: int, node, name: str):
        self.node_index = node_index
        self.name = name
        self.received: list[tuple[str, float]] = []
        self.history: list[str] | None = None
        self.acked: list[tuple[str, float]] = []
        self.unacked = 0
        self.lock = threading.Lock()
        self.client = socketio.Client(reconnection=False)
        self.client.on("message", self._message)
        self.client.on("welcome", self._welcome)
        self.client.connect(node.url, auth={"name": name}, transports=["websocket"], wait_timeout=15)

    def _message(self, payload, *_offset):
        with self.lock:
            self.received.append((payload.get("text", ""), time.monotonic()))

    def _welcome(self, payload, *_offset):
        with self.lock:
            self.history = [entry["text"] for entry in payload.get("history", [])]

    def send(self, text: str) -> None:
        try:
            answer = self.client.call("message", text, timeout=15)
        except Exception:  # noqa: BLE001 (a timeout or a disconnect: not acknowledged)
            answer = None
        with self.lock:
            if isinstance(answer, dict) and answer.get("ok"):
                self.acked.append((text, time.monotonic()))
            else:
                self.unacked += 1

    def close(self):
        if self.client.connected:
            self.client.disconnect()


class Traffic:
    """`per_node` users on each chat node, each sending one message every `interval` s, and
    a watcher recording every node's /readyz four times a second."""

    def __init__(self, nodes, per_node: int = 4, interval: float = 1.2, tag: str = ""):
        self.nodes = nodes
        self.interval = interval
        self.tag = tag or uuid.uuid4().hex[:6]
        self.users = [User(i, node, f"{self.tag}-n{i}-u{k}") for i, node in enumerate(nodes) for k in range(per_node)]
        self.stopping = threading.Event()
        self.readiness: list[tuple[float, int, bool]] = []
        self.threads = [threading.Thread(target=self._send_loop, args=(n, user), daemon=True) for n, user in enumerate(self.users)]
        self.threads.append(threading.Thread(target=self._watch_readiness, daemon=True))
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()

    def _send_loop(self, number: int, user: User):
        # Staggered so the cluster gets a steady stream, not bursts.
        time.sleep(self.interval * number / len(self.users))
        sequence = 0
        while not self.stopping.is_set():
            began = time.monotonic()
            user.send(f"{user.name}-{sequence}")
            sequence += 1
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def _watch_readiness(self):
        while not self.stopping.is_set():
            for index, node in enumerate(self.nodes):
                self.readiness.append((time.monotonic(), index, is_ready(node)))
            self.stopping.wait(0.25)

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.stopped = time.monotonic()

    def close(self):
        for user in self.users:
            user.close()

    # --- what happened -------------------------------------------------------------------

    def acked(self) -> dict[str, tuple[int, float]]:
        """Acknowledged text -> (sender's node, time of the ack)."""
        return {text: (user.node_index, at) for user in self.users for text, at in user.acked}

    def losses_and_duplicates(self):
        acked = self.acked()
        lost, duplicates = {}, {}
        for user in self.users:
            texts = [text for text, _ in user.received]
            lost[user.name] = sorted(set(acked) - set(texts))
            duplicates[user.name] = len(texts) - len(set(texts))
        return lost, duplicates

    def longest_silence(self, since: float, until: float) -> tuple[float, str]:
        """The longest time any user heard nothing from the users of one node (between
        `since` and `until`): how long a node's users were cut off from another's."""
        origin = {text: node for text, (node, _) in self.acked().items()}
        worst, where = 0.0, ""
        for user in self.users:
            for node in range(len(self.nodes)):
                times = [since] + sorted(at for text, at in user.received if origin.get(text) == node and since <= at <= until) + [until]
                gap = max(b - a for a, b in zip(times, times[1:]))
                if gap > worst:
                    worst, where = gap, f"{user.name} heard nothing from node {node}"
        return worst, where

    def not_ready_after(self, moment: float) -> dict[int, float]:
        """Per node: seconds after `moment` until its /readyz stayed 200 (0: ready throughout)."""
        result = {}
        for index in range(len(self.nodes)):
            last_bad = max((at for at, node, ready in self.readiness if node == index and not ready and at >= moment), default=None)
            result[index] = 0.0 if last_bad is None else last_bad - moment
        return result

    def not_ready_seconds(self) -> dict[int, float]:
        """Per node: total time /readyz was not 200 during the run (sampled every 0.25 s)."""
        totals = {index: 0.0 for index in range(len(self.nodes))}
        for index in totals:
            samples = [(at, ready) for at, node, ready in self.readiness if node == index]
            for (at, ready), (next_at, _) in zip(samples, samples[1:]):
                if not ready:
                    totals[index] += next_at - at
        return totals
