"""python-socketio peer of the chat, for side-by-side benchmarks.

Speaks the same minimal chat protocol as our `chat` executable, so `sio-bench` can run
unchanged against both:
  - a client may pass `auth = {"room": "<name>"}`; otherwise it joins "general";
  - on `message` with a string, the server broadcasts `message` {text, date} to that room
    (the sender included, as the chat does).
With `--amqp-url` broadcasts go through RabbitMQ (socketio.AsyncAioPikaManager), so several
peer processes form a cluster; without it the node is on its own.
"""

import argparse
import datetime
import resource

import socketio
from aiohttp import web

DEFAULT_ROOM = "general"


def raise_open_file_limit():
    # Each connection is a file descriptor; the soft limit (often 1024) would cap the bench
    # long before memory does.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_server(amqp_url, ping_interval_ms, ping_timeout_ms):
    manager = socketio.AsyncAioPikaManager(amqp_url) if amqp_url else None
    kwargs = dict(
        async_mode="aiohttp",
        cors_allowed_origins="*",
        ping_interval=ping_interval_ms / 1000.0,
        ping_timeout=ping_timeout_ms / 1000.0,
        logger=False,
        engineio_logger=False,
    )
    if manager is not None:
        kwargs["client_manager"] = manager
    sio = socketio.AsyncServer(**kwargs)
    rooms = {}

    @sio.event
    async def connect(sid, environ, auth):
        room = DEFAULT_ROOM
        if isinstance(auth, dict) and isinstance(auth.get("room"), str) and auth["room"]:
            room = auth["room"][:64]
        rooms[sid] = room
        await sio.enter_room(sid, room)

    @sio.event
    async def disconnect(sid, *args):
        rooms.pop(sid, None)

    @sio.event
    async def message(sid, text):
        if not isinstance(text, str):
            return
        date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        await sio.emit("message", {"text": text, "date": date.replace("+00:00", "Z")},
                       room=rooms.get(sid, DEFAULT_ROOM))

    return sio


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--amqp-url", default=None, help="RabbitMQ URL; enables the cluster manager")
    parser.add_argument("--ping-interval-ms", type=int, default=25000)
    parser.add_argument("--ping-timeout-ms", type=int, default=20000)
    args = parser.parse_args()

    raise_open_file_limit()
    sio = make_server(args.amqp_url, args.ping_interval_ms, args.ping_timeout_ms)
    app = web.Application()
    sio.attach(app)
    # A large backlog so a connect storm is measured against the server, not the kernel queue.
    web.run_app(app, host=args.host, port=args.port, backlog=4096, print=None, access_log=None)


if __name__ == "__main__":
    main()
