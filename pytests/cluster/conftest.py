"""Fixtures for the multi-node cluster tests: one RabbitMQ broker and three `sio-cluster-node`
processes on loopback, each started and stopped by PID by these fixtures."""
import os
import re
import signal
import subprocess
import threading
import uuid

import pytest
import socketio
from conftest import free_loopback_port
from interop.clientkit import wait_until  # noqa: F401 (the tests import it from here)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NODE_BIN = os.environ.get("CLUSTER_NODE_BIN", os.path.join(REPO, ".build", "debug", "sio-cluster-node"))
# A private broker node (pytests/cluster/test-broker) so that restarting it never disturbs
# the shared broker other suites use.
TEST_BROKER = os.path.join(REPO, "pytests", "cluster", "test-broker")
AMQP_URL = os.environ.get("CLUSTER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5673")
LOG_DIR = os.environ.get("CLUSTER_LOG_DIR", "/tmp/sio-cluster-test-logs")
os.makedirs(LOG_DIR, exist_ok=True)
# A free port per node: a fixed one in the ephemeral range (32768-60999 here) is taken now and
# then by some outgoing connection's local port ("Address already in use").


def rabbitmq(*args, check=True):
    return subprocess.run([TEST_BROKER, *args], check=check, capture_output=True, text=True, timeout=180)


def list_queues():
    out = rabbitmq("queues")
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


class Node:
    """One `sio-cluster-node` process; remembers its PID and its cluster node id."""

    def __init__(self, name, port, prefix, extra_args=()):
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.node_id = None
        self.lines = []
        args = [NODE_BIN, "--port", str(port), "--amqp-url", AMQP_URL, "--node-name", name,
                "--exchange-prefix", prefix, "--heartbeat-interval", "1", "--heartbeat-timeout", "3",
                "--request-timeout", "3", "--queue-expires-ms", "6000", *extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        listening = threading.Event()

        def pump():
            for line in self.process.stdout:
                self.lines.append(line.rstrip())
                match = re.search(r"node id (\S+)", line)
                if match:
                    self.node_id = match.group(1)
                if "listening on http://127.0.0.1:" in line:
                    listening.set()

        threading.Thread(target=pump, daemon=True).start()
        if not listening.wait(60):
            self.stop()
            raise RuntimeError(f"node {name} did not start:\n" + "\n".join(self.lines[-30:]))

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class Client:
    """A python-socketio client recording every event it receives, in order."""

    def __init__(self, node, auth=None):
        self.node = node
        self.events = []
        self.lock = threading.Lock()
        self.sio = socketio.Client(reconnection=False)
        # python-engineio hands every incoming message to a new thread, so handlers may
        # run out of arrival order. Order is what some tests check: handle messages on
        # the reading thread instead (nothing here blocks in a handler).
        deliver = self.sio.eio._trigger_event

        def in_arrival_order(event, *args, **kwargs):
            if event == "message":
                kwargs["run_async"] = False
            return deliver(event, *args, **kwargs)

        self.sio.eio._trigger_event = in_arrival_order
        self.sio.on("*", self._record)
        self.sio.connect(node.url, transports=["websocket"], auth=auth, wait_timeout=10)

    def _record(self, event, *args):
        with self.lock:
            self.events.append((event, args))

    def received(self, event):
        with self.lock:
            return [args for name, args in self.events if name == event]

    def call(self, event, data=None, timeout=15):
        return self.sio.call(event, data, timeout=timeout)

    @property
    def sid(self):
        return self.sio.get_sid("/")

    def close(self):
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture(scope="session")
def broker():
    if not os.path.exists(NODE_BIN):
        pytest.fail(f"{NODE_BIN} missing: run `swift build --product sio-cluster-node` first")
    if os.environ.get("CLUSTER_BROKER_GIVEN") == "1":
        # CLUSTER_AMQP_URL names a broker someone else runs (e.g. a vhost of the shared one on
        # a busy machine); the tests that stop or restart the private node do not apply then.
        yield
        return
    was_running = rabbitmq("status", check=False).returncode == 0
    rabbitmq("start")
    yield
    if not was_running:
        # We started this private node, so we stop it (by its node name, nothing else).
        rabbitmq("stop", check=False)


@pytest.fixture
def cluster(broker, request):
    """Three nodes on one fresh exchange prefix, so tests never see each other's traffic."""
    extra = getattr(request, "param", ())
    prefix = "t" + uuid.uuid4().hex[:8]
    nodes = []
    try:
        for name in ["a", "b", "c"]:
            nodes.append(Node(name, free_loopback_port(), prefix, extra))
        # Membership settles after the initial heartbeats.
        assert wait_until(lambda: all(_server_count(n) == 3 for n in nodes), 15), "nodes never saw each other"
        yield nodes
    finally:
        for node in nodes:
            node.stop()
            # Kept for post-mortems: the node's own log of the last test.
            with open(os.path.join(LOG_DIR, f"node-{node.name}.log"), "w") as log:
                log.write("\n".join(node.lines) + "\n")


def _server_count(node):
    client = Client(node)
    try:
        return client.call("server-count")
    finally:
        client.close()


@pytest.fixture
def clients():
    made = []

    def make(node, auth=None):
        client = Client(node, auth)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
