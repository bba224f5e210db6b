"""What the cluster test modules share: a client's received payloads, the pause in which
duplicates would show, a node's /readyz and /metrics, and a raw Socket.IO client that can
ask for connection state recovery."""
import time

import requests


def payloads(client, event="broadcast"):
    return [args[0] for args in client.received(event)]


def traffic_seen(client):
    """(origin node, sequence number) of every `traffic` packet the client received, in order."""
    return [(p["node"], p["seq"]) for p in payloads(client, "traffic")]


def settle():
    # Extra deliveries (duplicates) would arrive within this after the expected ones.
    time.sleep(0.7)


def is_ready(node):
    try:
        return requests.get(node.url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def node_metrics(node):
    return requests.get(node.url + "/metrics", timeout=5).json()


class RawSocketIOClient:
    """A minimal Socket.IO v5 client over one WebSocket, enough for connection state
    recovery (python-socketio's client does not send `pid`/`offset`)."""

    def __init__(self, node, auth=None):
        import json
        import websocket

        self.json = json
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{node.port}/socket.io/?EIO=4&transport=websocket", timeout=10)
        assert self.ws.recv().startswith("0")  # Engine.IO open
        self.ws.send("40" + (json.dumps(auth) if auth else ""))
        self.events = []
        deadline = time.monotonic() + 10
        while True:
            packet = self._next(deadline)
            if packet.startswith("40"):
                self.connect_reply = json.loads(packet[2:])
                break
            self._record(packet)

    def _next(self, deadline=None):
        # The deadline covers the whole wait: a per-recv timeout would start again after
        # every server ping and never expire when it is longer than the ping interval.
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no Socket.IO packet before the deadline")
                self.ws.settimeout(remaining)
            frame = self.ws.recv()
            if frame == "2":  # Engine.IO ping
                self.ws.send("3")
                continue
            return frame

    def _record(self, packet):
        if packet.startswith("42"):
            self.events.append(self.json.loads(packet[2:]))

    def read_events(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            try:
                self._record(self._next(deadline))
            except Exception:
                break
        return self.events

    def call(self, event, argument, ack_id=0, timeout=10):
        """Emits with an ack id and returns the ack's arguments (events meanwhile are kept)."""
        self.ws.send(f"42{ack_id}" + self.json.dumps([event, argument]))
        deadline = time.monotonic() + timeout
        while True:
            packet = self._next(deadline)
            if packet.startswith(f"43{ack_id}["):
                return self.json.loads(packet[len(f"43{ack_id}"):])
            self._record(packet)

    def close(self):
        self.ws.close()


def cut_transport(raw):
    """Drops the TCP connection without a Socket.IO or WebSocket goodbye, as a network cut."""
    import socket as _socket

    raw.ws.sock.shutdown(_socket.SHUT_RDWR)
    raw.ws.sock.close()
