"""Wire-level Engine.IO v4 / Socket.IO v5 clients for tests that need exact bytes.

The official python-socketio client hides the wire; these speak it directly so tests
can compare exact frames and send packets no well-behaved client would send.
Both answer the server's pings (`2` -> `3`) by themselves, so a connection can only
close because of what a test sent, never because a heartbeat was missed.
"""

from __future__ import annotations

import base64
import json
import time

import requests
import websocket

ENGINE_PATH = "/socket.io/"
RECORD_SEPARATOR = "\x1e"


class ClosedByServer(Exception):
    """The server closed the connection (close frame, TCP close, or HTTP 400 on polling)."""


def websocket_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + ENGINE_PATH + "?EIO=4&transport=websocket"


class RawWebSocket:
    def __init__(self, base_url: str, timeout: float = 5.0):
        self.ws = websocket.create_connection(websocket_url(base_url), timeout=timeout)
        opcode, data = self.ws.recv_data()
        text = data.decode("utf-8")
        if not text.startswith("0"):
            raise AssertionError(f"expected an open packet, got {text!r}")
        self.open_packet = json.loads(text[1:])
        self.sid = self.open_packet["sid"]

    def send_text(self, text: str) -> None:
        self.ws.send(text)

    def send_binary(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def receive(self, timeout: float = 3.0):
        """Next non-ping frame as str (text) or bytes (binary). Pings are answered here.
        Raises ClosedByServer on close, TimeoutError when nothing came in time."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the server in time")
            self.ws.settimeout(remaining)
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException as error:
                raise TimeoutError("no frame from the server in time") from error
            except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError) as error:
                raise ClosedByServer(str(error)) from error
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise ClosedByServer(f"close frame {data[:2].hex()}")
            if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                continue
            if opcode == websocket.ABNF.OPCODE_BINARY:
                return bytes(data)
            if opcode == 0 and not data:
                # websocket-client reports a vanished TCP peer as an empty frame.
                raise ClosedByServer("connection closed")
            text = data.decode("utf-8")
            if text == "2":
                self.send_pong_quietly()
                continue
            return text

    def send_pong_quietly(self) -> None:
        try:
            self.ws.send("3")
        except (websocket.WebSocketConnectionClosedException, OSError):
            pass

    def receive_until(self, predicate, timeout: float = 3.0):
        """Frames are read (and skipped) until one satisfies predicate; it is returned."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching frame; saw {seen[-10:]!r}")
            frame = self.receive(remaining)
            if predicate(frame):
                return frame
            seen.append(frame)

    def connect_namespace(self, namespace: str = "/", auth: dict | None = None) -> str:
        """Socket.IO CONNECT; returns the socket id and consumes the `auth` event after it."""
        prefix = "" if namespace == "/" else f"{namespace},"
        self.send_text("40" + prefix + ("" if auth is None else json.dumps(auth, separators=(",", ":"))))
        reply = self.receive()
        expected = "40" + prefix + '{"sid":'
        if not reply.startswith(expected):
            raise AssertionError(f"expected {expected}..., got {reply!r}")
        socket_id = json.loads(reply[len("40" + prefix):])["sid"]
        auth_event = self.receive()
        if not auth_event.startswith("42" + prefix + '["auth"'):
            raise AssertionError(f"expected the auth event, got {auth_event!r}")
        return socket_id

    def stays_open_for(self, seconds: float) -> bool:
        """Keeps answering pings for `seconds`; False if the server closed meanwhile."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                try:
                    self.receive(max(0.05, deadline - time.monotonic()))
                except TimeoutError:
                    pass
        except ClosedByServer:
            return False
        return True

    def closes_within(self, seconds: float) -> bool:
        """Keeps ponging; True as soon as the server closes, False if it is still open at the end."""
        return not self.stays_open_for(seconds)

    def close(self) -> None:
        try:
            self.ws.close(timeout=0.5)
        except Exception:
            pass


class RawPolling:
    """HTTP long-polling session. Each GET/POST has a timeout so a hung server fails a test."""

    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url
        self.timeout = timeout
        self.http = requests.Session()
        response = self.http.get(self._url(), timeout=timeout)
        response.raise_for_status()
        body = response.text
        if not body.startswith("0"):
            raise AssertionError(f"expected an open packet, got {body!r}")
        self.open_packet = json.loads(body[1:])
        self.sid = self.open_packet["sid"]
        self.response_headers = response.headers

    def _url(self, sid: str | None = None) -> str:
        url = f"{self.base_url}{ENGINE_PATH}?EIO=4&transport=polling"
        if sid:
            url += f"&sid={sid}"
        return url

    def get(self, timeout: float | None = None) -> requests.Response:
        return self.http.get(self._url(self.sid), timeout=timeout or self.timeout)

    def post(self, body: str | bytes) -> requests.Response:
        data = body.encode("utf-8") if isinstance(body, str) else body
        return self.http.post(
            self._url(self.sid),
            data=data,
            headers={"Content-Type": "text/plain;charset=UTF-8"},
            timeout=self.timeout,
        )

    def post_packets(self, packets: list) -> requests.Response:
        """Packets are str (text) or bytes (binary, sent as `b<base64>`), joined by \\x1e."""
        encoded = [
            "b" + base64.b64encode(packet).decode("ascii") if isinstance(packet, bytes) else packet
            for packet in packets
        ]
        return self.post(RECORD_SEPARATOR.join(encoded))

    def receive_packets(self, timeout: float | None = None) -> list:
        """One GET; pings are answered and dropped. Binary packets come back as bytes."""
        response = self.get(timeout)
        if response.status_code != 200:
            raise ClosedByServer(f"GET answered {response.status_code}: {response.text[:200]!r}")
        packets = []
        for packet in response.text.split(RECORD_SEPARATOR):
            if packet == "2":
                self.post("3")
            elif packet.startswith("b"):
                packets.append(base64.b64decode(packet[1:]))
            else:
                packets.append(packet)
        return packets

    def connect_namespace(self, namespace: str = "/", auth: dict | None = None) -> str:
        prefix = "" if namespace == "/" else f"{namespace},"
        self.post("40" + prefix + ("" if auth is None else json.dumps(auth, separators=(",", ":"))))
        received = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(
            isinstance(p, str) and p.startswith("42" + prefix + '["auth"') for p in received
        ):
            received.extend(self.receive_packets())
        replies = [p for p in received if isinstance(p, str) and p.startswith("40" + prefix + '{"sid":')]
        if not replies:
            raise AssertionError(f"no CONNECT reply for {namespace}; got {received!r}")
        return json.loads(replies[0][len("40" + prefix):])["sid"]

    def closes_within(self, seconds: float) -> bool:
        """Keeps polling (and ponging); True once the session is gone: a GET answers 400,
        or a GET carries the close packet `1` and the next one is refused."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                response = self.get(timeout=max(0.5, deadline - time.monotonic() + 1))
            except requests.RequestException:
                return True
            if response.status_code != 200:
                return True
            for packet in response.text.split(RECORD_SEPARATOR):
                if packet == "2":
                    try:
                        self.post("3")
                    except requests.RequestException:
                        return True
        return False

    def stays_open_for(self, seconds: float) -> bool:
        return not self.closes_within(seconds)
