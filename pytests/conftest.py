"""Shared fixtures: start the `sio-conformance` fixture server as a black box.

The binary comes from $SIO_FIXTURE (default: .build/debug/sio-conformance under the
repository root). It is started on a free loopback port, we wait for the line
`listening on http://127.0.0.1:P`, and it is stopped by PID when the tests are done.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURE = REPO_ROOT / ".build" / "debug" / "sio-conformance"
TEST_OUTPUT = REPO_ROOT / "test-output"
STARTUP_TIMEOUT_SECONDS = 30.0


def fixture_binary() -> Path:
    return Path(os.environ.get("SIO_FIXTURE", str(DEFAULT_FIXTURE)))


def free_loopback_port() -> int:
    # The port is released before the server binds it; a race with another process
    # grabbing it in between is possible but rare on a test machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc/PID/status (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS line for pid {pid}")


class SioServerProcess:
    """One running fixture server. Its output is drained in a thread so a chatty
    server can never block on a full pipe; the last lines are kept for diagnostics."""

    def __init__(
        self,
        binary: Path,
        name: str = "sio-conformance",
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
    ):
        if not binary.exists():
            raise RuntimeError(
                f"fixture binary {binary} does not exist: run `swift build` first "
                "or point SIO_FIXTURE at a built sio-conformance"
            )
        self.port = port or free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        TEST_OUTPUT.mkdir(exist_ok=True)
        self.log_path = TEST_OUTPUT / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        self.recent_output: collections.deque[str] = collections.deque(maxlen=200)
        self._listening = threading.Event()
        self.process = subprocess.Popen(
            [str(binary), "--port", str(self.port), "--host", "127.0.0.1", *extra_args],
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        self.pid = self.process.pid
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        if not self._listening.wait(STARTUP_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError(
                f"{binary} did not print 'listening on' within {STARTUP_TIMEOUT_SECONDS}s; "
                f"output:\n{self.tail()}"
            )

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.recent_output.append(line.rstrip("\n"))
            self._log.write(line)
            self._log.flush()
            if "listening on http://" in line:
                self._listening.set()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(list(self.recent_output)[-lines:])

    def is_alive(self) -> bool:
        return self.process.poll() is None

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._drainer.join(timeout=2)
        self._log.close()


@pytest.fixture(scope="session")
def sio_server():
    server = SioServerProcess(fixture_binary())
    yield server
    still_alive = server.is_alive()
    server.stop()
    # A server that died during the session is a bug in itself, whatever the tests said.
    assert still_alive, f"sio-conformance exited during the test session:\n{server.tail()}"


@pytest.fixture
def sio_url(sio_server):
    assert sio_server.is_alive(), f"sio-conformance is not running:\n{sio_server.tail()}"
    return sio_server.url


@pytest.fixture
def start_sio_server():
    """Factory for a private server instance (fuzz tests want their own process and RSS)."""
    started: list[SioServerProcess] = []

    def start(name: str = "sio-conformance-private", extra_args: tuple[str, ...] = ()) -> SioServerProcess:
        server = SioServerProcess(fixture_binary(), name=name, extra_args=extra_args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# --- broker isolation ------------------------------------------------------------------
# The chat a user starts with scripts/cluster lives in the broker's default vhost `/`. No
# test may write there: scripts/test exports AMQP_URL with a vhost of the run's own, and a
# plain `pytest` gets one here (made now, deleted at the end), so tests and the chat nodes
# they start never share queues or the history stream with the user's chat.
_session_vhost: str | None = None


def amqp_vhost(url: str) -> str:
    """The vhost an amqp:// URL names ('/' when none, as RabbitMQ reads it)."""
    rest = url.split("://", 1)[-1]
    path = rest.split("/", 1)[1] if "/" in rest else ""
    path = path.split("?", 1)[0]
    from urllib.parse import unquote
    return unquote(path) if path else "/"


def pytest_configure(config):
    global _session_vhost
    if os.environ.get("AMQP_URL"):
        return
    vhost = f"sio-pytest-{os.getpid()}"
    try:
        made = subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, timeout=30).returncode == 0
        made = made and subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                                       capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        made = False
    if made:
        _session_vhost = vhost
    # Even when the vhost could not be made (no broker, no rabbitmqctl), the URL names it:
    # a broker test then fails to connect instead of writing into the default vhost.
    os.environ["AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"


def pytest_unconfigure(config):
    if _session_vhost:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", _session_vhost], capture_output=True, timeout=30)
