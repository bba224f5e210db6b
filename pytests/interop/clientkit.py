"""Helpers around the official python-socketio client for the interop tests."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import socketio

RESPONSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class TransportMode:
    name: str
    transports: list[str] | None  # None = the client's default: polling, then upgrade

    def __str__(self) -> str:
        return self.name


TRANSPORT_MODES = [
    TransportMode("websocket-only", ["websocket"]),
    TransportMode("polling-only", ["polling"]),
    TransportMode("polling-then-upgrade", None),
]


class RecordingClient:
    """A python-socketio client that records every event it gets, per namespace, so tests can
    wait for one with a timeout instead of sleeping."""

    def __init__(self, namespaces=("/",), ack_handlers: dict | None = None):
        self.client = socketio.Client(reconnection=False, request_timeout=RESPONSE_TIMEOUT)
        self.namespaces = list(namespaces)
        self._events: dict[tuple[str, str], queue.Queue] = {}
        self._lock = threading.Lock()
        self.disconnect_reasons: dict[str, queue.Queue] = {}
        self.connect_errors: dict[str, queue.Queue] = {}
        ack_handlers = ack_handlers or {}
        for namespace in self.namespaces:
            self.disconnect_reasons[namespace] = queue.Queue()
            self.connect_errors[namespace] = queue.Queue()
            self.client.on("*", self._catch_all(namespace), namespace=namespace)
            self.client.on("disconnect", self._on_disconnect(namespace), namespace=namespace)
            self.client.on("connect_error", self._on_connect_error(namespace), namespace=namespace)
            for event, handler in ack_handlers.items():
                self.client.on(event, self._recording_ack_handler(namespace, event, handler), namespace=namespace)

    def _queue(self, namespace: str, event: str) -> queue.Queue:
        with self._lock:
            return self._events.setdefault((namespace, event), queue.Queue())

    def _catch_all(self, namespace):
        def handler(event, *args):
            self._queue(namespace, event).put(args)
        return handler

    def _recording_ack_handler(self, namespace, event, respond):
        def handler(*args):
            self._queue(namespace, event).put(args)
            return respond(*args)
        return handler

    def _on_disconnect(self, namespace):
        def handler(*reason):
            self.disconnect_reasons[namespace].put(reason)
        return handler

    def _on_connect_error(self, namespace):
        def handler(data=None):
            self.connect_errors[namespace].put(data)
        return handler

    def connect(self, url: str, mode: TransportMode, auth=None, wait_timeout: float = RESPONSE_TIMEOUT) -> None:
        self.client.connect(
            url,
            namespaces=self.namespaces,
            transports=mode.transports,
            auth=auth,
            wait_timeout=wait_timeout,
        )

    def wait_event(self, event: str, namespace: str = "/", timeout: float = RESPONSE_TIMEOUT) -> tuple:
        try:
            return self._queue(namespace, event).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {event!r} event in {namespace} within {timeout}s") from None

    def no_event(self, event: str, namespace: str = "/", wait: float = 0.5) -> bool:
        try:
            self._queue(namespace, event).get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def call(self, event: str, *args, namespace: str = "/"):
        return self.client.call(event, args if len(args) != 1 else args[0], namespace=namespace,
                                timeout=RESPONSE_TIMEOUT) if args else \
            self.client.call(event, namespace=namespace, timeout=RESPONSE_TIMEOUT)

    def emit(self, event: str, *args, namespace: str = "/") -> None:
        if args:
            self.client.emit(event, args if len(args) != 1 else args[0], namespace=namespace)
        else:
            self.client.emit(event, namespace=namespace)

    def disconnect(self) -> None:
        try:
            self.client.disconnect()
        except Exception:
            pass


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
