"""Storm generator: malformed and random Engine.IO / Socket.IO input over many connections.

Run as a separate process by test_storm.py so that its CPU use (and the GIL) never delays
the pongs of the well-behaved clients in the test process:

    python stormlib.py URL SEED WORKER_INDEX THREADS ATTACKS_PER_THREAD DEADLINE_SECONDS

It prints one JSON line with what it sent. Every loop is bounded by a count and a deadline.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import sys
import threading
import time

import requests
import websocket

ENGINE_PATH = "/socket.io/"
RECORD_SEPARATOR = "\x1e"
MAX_PAYLOAD = 1_000_000


def websocket_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + ENGINE_PATH + "?EIO=4&transport=websocket"


PLACEHOLDER = '{"_placeholder":true,"num":%d}'

VALID_TEMPLATES = [
    "40", "40/custom,", '40/private,{"token":"secret"}', '40{"token":"x"}', "41", "41/custom,",
    '42["message",1,"two",{"three":3}]', '421["message-with-ack","x"]', '42/custom,["whoami"]',
    '4212["whoami"]', '42["join","r1"]', '42["broadcast","r1","hi"]', '423["broadcast-with-ack","r1","q"]',
    '42["request-client-ack",1]', "430[]", "43/custom,5[1]", '451-["message",' + (PLACEHOLDER % 0) + "]",
    '461-7[' + (PLACEHOLDER % 0) + "]", "2", "3", "5", "6", "2probe", "1",
]

VIOLATION_TEMPLATES = [
    "4abc", '49["message"]', '42["message",1', '42abc["message"]', '42-1["message"]', "42{}", "42[]",
    '42[{"a":1}]', '42["connect"]', '42["disconnecting"]', '42["newListener"]', '40/custom,"x"',
    '41{"a":1}', '45x-["m",' + (PLACEHOLDER % 0) + "]", '4599999999999999999999-["m",' + (PLACEHOLDER % 0) + "]",
    '4618446744073709551616-1[' + (PLACEHOLDER % 0) + "]", '4511-["m"]', '451-["m",' + (PLACEHOLDER % 9) + "]",
    '451-["m",{"_placeholder":true,"num":-1}]', '451-["m",{"_placeholder":true,"num":"0"}]',
    '42/nope,["message"]', "9hello", "abc", "", "0", "0{}", "4", "\x00", "4\x1e4",
]


def random_json_fragment(rng: random.Random, depth: int = 0) -> str:
    choice = rng.randrange(9 if depth < 4 else 5)
    if choice == 0:
        return str(rng.choice([0, -1, 2**53 - 1, 2**64, 10**30, 1.5e308, -0.0]))
    if choice == 1:
        return '"' + "".join(rng.choice('ab\\"\u00e9\u2028\ud7ff/{}[],:') for _ in range(rng.randrange(12))) + '"'
    if choice == 2:
        return rng.choice(["true", "false", "null", "NaN", "Infinity", "undefined", "1e99999", "01", '"\\ud800"'])
    if choice == 3:
        return '"' + "x" * rng.randrange(0, 5000) + '"'
    if choice == 4:
        return rng.choice(['{"_placeholder":true,"num":0}', '{"_placeholder":true}', '{"_placeholder":1,"num":0}'])
    if choice in (5, 6):
        items = [random_json_fragment(rng, depth + 1) for _ in range(rng.randrange(4))]
        return "[" + ",".join(items) + "]"
    items = [f'"k{i}":{random_json_fragment(rng, depth + 1)}' for i in range(rng.randrange(4))]
    return "{" + ",".join(items) + "}"


def random_text_packet(rng: random.Random) -> str:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice(VALID_TEMPLATES)
    if kind == 1:
        return rng.choice(VIOLATION_TEMPLATES)
    if kind == 2:
        base = rng.choice(VALID_TEMPLATES + VIOLATION_TEMPLATES)
        return base[: rng.randrange(len(base) + 1)]  # truncated
    if kind == 3:
        base = bytearray(rng.choice(VALID_TEMPLATES).encode())
        for _ in range(rng.randrange(1, 4)):
            if base:
                base[rng.randrange(len(base))] = rng.randrange(32, 127)
        return base.decode("ascii", "replace")
    if kind == 4:
        depth = rng.choice([100, 1000, 20000])  # deep nesting must not overflow a recursive parser
        return "42" + "[" * depth + '"message"' + "]" * depth
    if kind == 5:
        count = rng.choice([1, 10, 11, 1000, 2**31, 2**63, 10**25])
        return f"45{count}-" + '["message",' + ",".join(PLACEHOLDER % i for i in range(min(count, 12))) + "]"
    if kind == 6:
        nsp = rng.choice(["/", "/custom", "/private", "/x" * 50, "", "/\u00e9", "custom"])
        return f"4{rng.randrange(7)}{nsp}," + random_json_fragment(rng)
    if kind == 7:
        ack = rng.choice(["", "0", "123456789", "99999999999999999999999", "1.5", "-3"])
        return f"4{rng.choice('23')}{ack}" + random_json_fragment(rng)
    if kind == 8:
        return "".join(chr(rng.randrange(0, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
    return "4" + random_json_fragment(rng)


def random_bytes(rng: random.Random, limit: int = 4096) -> bytes:
    return rng.randbytes(rng.randrange(0, limit))


class Storm:
    """Counts what was sent; every attack swallows its own network errors (the server is
    allowed, and often required, to close on us)."""

    def __init__(self, url: str, seed: int, deadline_seconds: float):
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self.seed = seed
        self.packets_sent = 0
        self.connections_opened = 0
        self._lock = threading.Lock()
        self.deadline = time.monotonic() + deadline_seconds

    def count(self, packets: int, connections: int = 0) -> None:
        with self._lock:
            self.packets_sent += packets
            self.connections_opened += connections

    def websocket_attack(self, rng: random.Random) -> None:
        ws = websocket.create_connection(websocket_url(self.url), timeout=2)
        self.count(0, 1)
        try:
            ws.recv()  # open packet
            if rng.random() < 0.7:
                ws.send("40")
            for _ in range(rng.randrange(1, 30)):
                roll = rng.random()
                if roll < 0.6:
                    ws.send(random_text_packet(rng))
                elif roll < 0.85:
                    ws.send_binary(random_bytes(rng))
                elif roll < 0.9:
                    ws.send("4" + "x" * (MAX_PAYLOAD + rng.randrange(1, 1000)))  # oversize frame
                elif roll < 0.95:
                    ws.send_binary(b"\x04" + random_bytes(rng, 64))
                else:
                    ws.send(b"4\xff\xfe" + random_bytes(rng, 64), opcode=websocket.ABNF.OPCODE_TEXT)  # invalid UTF-8
                self.count(1)
        finally:
            ws.close(timeout=0.2)

    def polling_attack(self, rng: random.Random) -> None:
        http = requests.Session()
        base = f"{self.url}{ENGINE_PATH}?EIO=4&transport=polling"
        handshake = http.get(base, timeout=2)
        self.count(1, 1)
        if handshake.status_code != 200 or not handshake.text.startswith("0"):
            return
        sid = handshake.text[handshake.text.index('"sid":"') + 7:].split('"', 1)[0]
        for _ in range(rng.randrange(1, 10)):
            roll = rng.random()
            if roll < 0.7:
                packets = [random_text_packet(rng) for _ in range(rng.randrange(1, 8))]
                if rng.random() < 0.3:
                    packets.append("b" + base64.b64encode(random_bytes(rng, 512)).decode())
                body = RECORD_SEPARATOR.join(packets).encode("utf-8", "surrogatepass")
            elif roll < 0.8:
                body = random_bytes(rng)
            elif roll < 0.85:
                body = b"4" + b"y" * (MAX_PAYLOAD + 10)  # oversize POST
            else:
                body = b"b" + rng.choice([b"!!!", b"AAA", b"=", b"\xff\xfe"])  # broken base64
            http.post(f"{base}&sid={sid}", data=body, timeout=2)
            self.count(1)
        if rng.random() < 0.3:
            http.get(f"{base}&sid={sid}", timeout=1)

    def raw_tcp_attack(self, rng: random.Random) -> None:
        payloads = [
            random_bytes(rng, 2048),
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + random_bytes(rng, 256),  # upgrade, then garbage instead of frames
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 70000 + b"\r\n\r\n",
            b"POST /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nab",
            b"GET /socket.io/?EIO=" + random_bytes(rng, 30).replace(b"\r", b"").replace(b"\n", b"") + b" HTTP/1.1\r\n\r\n",
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n",  # truncated request
        ]
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            self.count(1, 1)
            sock.sendall(rng.choice(payloads))
            try:
                sock.recv(4096)
            except OSError:
                pass

    def worker(self, index: int, attacks_count: int, errors: list) -> None:
        rng = random.Random(self.seed * 1000 + index)
        attacks = [self.websocket_attack] * 5 + [self.polling_attack] * 3 + [self.raw_tcp_attack] * 2
        for _ in range(attacks_count):
            if time.monotonic() > self.deadline:
                return
            try:
                rng.choice(attacks)(rng)
            except (OSError, websocket.WebSocketException, requests.RequestException):
                pass  # the server closing on us is expected
            except Exception as error:  # a bug in this test, not in the server
                errors.append(repr(error))
                return


def main() -> None:
    url, seed, worker_index, threads, attacks_per_thread, deadline_seconds = sys.argv[1:7]
    storm = Storm(url, int(seed), float(deadline_seconds))
    errors: list[str] = []
    workers = [
        threading.Thread(
            target=storm.worker,
            args=(int(worker_index) * 100 + i, int(attacks_per_thread), errors),
            daemon=True,
        )
        for i in range(int(threads))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=float(deadline_seconds) + 30)
    print(json.dumps({"packets": storm.packets_sent, "connections": storm.connections_opened, "errors": errors[:5]}))


if __name__ == "__main__":
    main()
