"""The chat as users meet it: three nodes joined through RabbitMQ, nginx in front.

Needs a broker on 127.0.0.1:5672 (scripts/test starts one) and nginx (installed by
scripts/test). Each node is a separate `chat` process that knows only the broker's URL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest
import requests
import socketio
from selenium.webdriver.common.by import By

from conftest import REPO_ROOT, TEST_OUTPUT, free_loopback_port

from .conftest import ChatUser, broker_reachable, start_chat
from .test_chat_browser import DATE_FORMAT, make_browser, open_chat, send, texts, wait

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672")
# The vhost scripts/test made for this run ("" for the default one), kept on URLs to a proxy.
AMQP_VHOST_PATH = AMQP_URL.split("127.0.0.1:5672", 1)[1] if "127.0.0.1:5672" in AMQP_URL else ""


pytestmark = pytest.mark.skipif(
    not broker_reachable() and os.environ.get("CI") != "true",
    reason="no RabbitMQ on 127.0.0.1:5672 (scripts/test starts one; in CI this test must run)",
)


def render_nginx_conf(ports: list[int], listen_port: int, prefix: str) -> str:
    """deploy/nginx.conf with its upstream pointed at `ports` (what scripts/cluster does)."""
    source = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n" for port in ports)
    lines, replaced = [], False
    for line in source.splitlines(keepends=True):
        if re.match(r"^ *server 127\.0\.0\.1:\d+ ", line):
            if not replaced:
                lines.append(servers)
                replaced = True
            continue
        lines.append(line.replace("listen 127.0.0.1:8080;", f"listen 127.0.0.1:{listen_port};"))
    assert replaced, "deploy/nginx.conf has no upstream servers to replace"
    return "".join(lines)


class Cluster:
    def __init__(self, tmp_path):
        self.nodes = [start_chat(f"chat-cluster-{i}", "--adapter", "rabbitmq", "--rate-limit", "100",
                                 "--rate-burst", "100", env={"AMQP_URL": AMQP_URL}) for i in range(3)]
        for node in self.nodes:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if requests.get(node.url + "/readyz", timeout=2).status_code == 200:
                    break
                time.sleep(0.2)
            else:
                raise AssertionError(f"node {node.url} never became ready:\n{node.tail()}")
        self.front_port = free_loopback_port()
        prefix = tmp_path / "nginx"
        (prefix / "logs").mkdir(parents=True)
        (prefix / "tmp").mkdir()
        os.chmod(prefix / "tmp", 0o777)
        conf = prefix / "nginx.conf"
        conf.write_text(render_nginx_conf([node.port for node in self.nodes], self.front_port, str(prefix)))
        self.nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(prefix), "-c", str(conf)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.front = f"http://127.0.0.1:{self.front_port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(self.front + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError("nginx did not come up: " + self.nginx.stderr.read().decode(errors="replace"))

    def stop(self):
        self.nginx.send_signal(signal.SIGQUIT)
        try:
            self.nginx.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = Cluster(tmp_path_factory.mktemp("cluster"))
    yield started
    started.stop()


def test_messages_reach_every_node_exactly_once(cluster):
    users = [ChatUser(node.url, name=f"user{i}", room="everyone") for i, node in enumerate(cluster.nodes)]
    try:
        for i, user in enumerate(users):
            assert user.send(f"from node {i}")["ok"]
        expected = sorted(f"from node {i}" for i in range(3))
        for user in users:
            user.wait_for(lambda u=user: len(u.messages) >= 3)
        time.sleep(0.5)  # anything extra (a duplicate) would have arrived by now
        for user in users:
            assert sorted(m["text"] for m in user.messages) == expected
        # Presence is cluster-wide: every node sees all three names.
        users[0].wait_for(lambda: users[0].presence and users[0].presence[-1]["members"] == ["user0", "user1", "user2"])
    finally:
        for user in users:
            user.close()


def test_history_is_the_same_on_every_node(cluster):
    # The history stream outlives test runs: a fresh room keeps this run's entries apart.
    room = f"history-{uuid.uuid4().hex[:8]}"
    writer = ChatUser(cluster.nodes[0].url, name="historian", room=room)
    try:
        for i in range(5):
            assert writer.send(f"entry {i}")["ok"]
        time.sleep(0.5)
        for node in cluster.nodes:
            reader = ChatUser(node.url, name="reader", room=room)
            reader.wait_for(lambda: reader.welcomes)
            assert [m["text"] for m in reader.welcomes[0]["history"]] == [f"entry {i}" for i in range(5)], node.url
            reader.close()
    finally:
        writer.close()


def test_browsers_through_nginx_and_direct_on_another_node(cluster):
    through_nginx, direct = make_browser(), make_browser()
    try:
        open_chat(through_nginx, cluster.front, "Nina", room="browsers")
        open_chat(direct, cluster.nodes[2].url, "Dirk", room="browsers")
        send(through_nginx, "hello via nginx")
        wait(direct, "Dirk sees Nina", lambda d: "hello via nginx" in texts(d))
        send(direct, "hello from node 3")
        wait(through_nginx, "Nina sees Dirk", lambda d: "hello from node 3" in texts(d))
        dates = [e.text for e in direct.find_elements(By.CSS_SELECTOR, "#messages .message .date")]
        assert dates and all(DATE_FORMAT.match(d) for d in dates), dates
        members = lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#members li")]
        wait(through_nginx, "presence across nodes", lambda d: members(d) == ["Dirk", "Nina"])
        TEST_OUTPUT.mkdir(exist_ok=True)
        through_nginx.save_screenshot(str(TEST_OUTPUT / "chat-cluster.png"))
    finally:
        through_nginx.quit()
        direct.quit()


def test_graceful_shutdown_moves_clients_to_another_node(cluster, tmp_path):
    # Both clients come through nginx, so they sit on the same node (sticky by address).
    received: list[str] = []
    reconnected = []
    mover = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1)
    mover.on("message", lambda m, *r: received.append(m["text"]))
    mover.on("connect", lambda: reconnected.append(time.monotonic()))
    mover.connect(cluster.front, auth={"name": "mover", "room": "moving"}, transports=["websocket"], wait_timeout=10)
    watcher = ChatUser(cluster.nodes[0].url, name="watcher", room="moving")
    try:
        assert watcher.send("before")["ok"]
        deadline = time.monotonic() + 5
        while "before" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        # Which node holds the mover? Ask every node for its connection count.
        def websocket_count(node):
            text = requests.get(node.url + "/metrics", timeout=5).text
            match = re.search(r'^chat_connections_by_transport\{transport="websocket"\} (\S+)$', text, re.M)
            return float(match.group(1)) if match else 0.0
        holder = max(cluster.nodes[1:], key=websocket_count, default=None)
        if holder is None or websocket_count(holder) == 0:
            holder = cluster.nodes[0]
        if holder is cluster.nodes[0]:
            pytest.skip("nginx put the mover on the watcher's node; nothing to move")
        os.kill(holder.pid, signal.SIGTERM)
        assert holder.process.wait(timeout=15) == 0, holder.tail()
        deadline = time.monotonic() + 15
        while len(reconnected) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(reconnected) >= 2, "the client did not reconnect through nginx"
        time.sleep(0.5)
        assert watcher.send("after the move")["ok"]
        deadline = time.monotonic() + 5
        while "after the move" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "after the move" in received
        mover.emit("message", "mover speaks again")
        watcher.wait_for(lambda: any(m["text"] == "mover speaks again" for m in watcher.messages))
    finally:
        mover.disconnect()
        watcher.close()


def test_readiness_follows_the_broker(cluster):
    node = cluster.nodes[0]
    assert requests.get(node.url + "/readyz", timeout=5).status_code == 200
    subprocess.run([str(REPO_ROOT / "scripts" / "rabbitmq"), "stop-app"], check=True, timeout=60)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and requests.get(node.url + "/readyz", timeout=5).status_code == 200:
            time.sleep(0.2)
        not_ready = requests.get(node.url + "/readyz", timeout=5)
        assert not_ready.status_code == 503, not_ready.text
        assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
        # Local clients are still served while the broker is away.
        local = ChatUser(node.url, name="local", room="outage")
        assert local.send("still here")["ok"]
        local.wait_for(lambda: local.messages)
        local.close()
    finally:
        subprocess.run([str(REPO_ROOT / "scripts" / "rabbitmq"), "start-app"], check=True, timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and requests.get(node.url + "/readyz", timeout=5).status_code != 200:
        time.sleep(0.5)
    assert requests.get(node.url + "/readyz", timeout=5).status_code == 200, node.tail()


class TCPForwarder:
    """A loopback port that forwards to the broker, opened only when the test says so."""

    def __init__(self, port: int, target=("127.0.0.1", 5672)):
        import socket
        import threading
        self.port, self.target = port, target
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        import socket
        import threading
        while self.running:
            try:
                client, _ = self.server.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.running = False
        self.server.close()


def test_unreachable_broker_at_start_is_reported_once_and_retried():
    broker_port = free_loopback_port()
    node = start_chat("chat-no-broker", "--adapter", "rabbitmq",
                      env={"AMQP_URL": f"amqp://guest:guest@127.0.0.1:{broker_port}{AMQP_VHOST_PATH}"})
    forwarder = None
    try:
        assert requests.get(node.url + "/healthz", timeout=5).status_code == 200
        time.sleep(5)  # two or three retries
        not_ready = requests.get(node.url + "/readyz", timeout=5)
        assert not_ready.status_code == 503 and "not reachable" in not_ready.text, not_ready.text
        assert "guest:***@" in not_ready.text, "the password must not be shown"
        complaints = [line for line in node.recent_output if "is not reachable" in line]
        assert len(complaints) == 1, complaints
        assert node.is_alive()
        # The broker "comes back": the node connects by itself and becomes ready.
        forwarder = TCPForwarder(broker_port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and requests.get(node.url + "/readyz", timeout=5).status_code != 200:
            time.sleep(0.25)
        assert requests.get(node.url + "/readyz", timeout=5).status_code == 200, node.tail()
        user = ChatUser(node.url, name="late", room="late")
        assert user.send("the node is up")["ok"]
        user.close()
    finally:
        node.stop()
        if forwarder:
            forwarder.close()
