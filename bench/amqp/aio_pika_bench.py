#!/usr/bin/env python3
"""aio-pika peer of `amqp-bench`: the same workload, so the two can be compared on one machine.

Workload: one connection; a server-named exclusive queue; a consumer (no-ack) on one channel while a
second channel publishes --messages bodies of --size bytes to that queue through the default exchange
with publisher confirms, keeping at most --window publishes unconfirmed. Each body starts with the
send time (monotonic ns), so the consumer measures publish-to-delivery latency.

Prints a short human summary, then one JSON object as the last line.
"""
import argparse
import asyncio
import json
import struct
import sys
import time

import aio_pika


def percentile(sorted_values, fraction):
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def run(args):
    connection = await aio_pika.connect(args.url)
    async with connection:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        queue = await consume_channel.declare_queue("", exclusive=True, auto_delete=True)

        latencies_ns = []
        received = 0
        last_received_at = None
        all_received = asyncio.Event()

        async def on_message(message):
            nonlocal received, last_received_at
            now = time.perf_counter_ns()
            sent = struct.unpack_from(">Q", message.body)[0]
            latencies_ns.append(now - sent)
            received += 1
            if received == args.messages:
                last_received_at = now
                all_received.set()

        await queue.consume(on_message, no_ack=True)

        padding = b"x" * max(0, args.size - 8)
        window = asyncio.Semaphore(args.window)
        confirmed = 0
        pending = set()

        async def publish_one():
            nonlocal confirmed
            try:
                body = struct.pack(">Q", time.perf_counter_ns()) + padding
                await publish_channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
                confirmed += 1
            finally:
                window.release()

        started = time.perf_counter_ns()
        for _ in range(args.messages):
            await window.acquire()
            task = asyncio.ensure_future(publish_one())
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        published_at = time.perf_counter_ns()

        try:
            await asyncio.wait_for(all_received.wait(), timeout=args.timeout)
        except asyncio.TimeoutError:
            pass
        finished = last_received_at or time.perf_counter_ns()

    publish_seconds = (published_at - started) / 1e9
    total_seconds = (finished - started) / 1e9
    latencies_ms = sorted(value / 1e6 for value in latencies_ns)
    return {
        "client": f"aio-pika {aio_pika.__version__}",
        "messages": args.messages,
        "size": args.size,
        "confirmed": confirmed,
        "received": received,
        "seconds": round(total_seconds, 3),
        "published_per_s": round(confirmed / publish_seconds, 1) if publish_seconds > 0 else 0.0,
        "consumed_per_s": round(received / total_seconds, 1) if total_seconds > 0 else 0.0,
        "latency_ms_p50": round(percentile(latencies_ms, 0.50), 3),
        "latency_ms_p99": round(percentile(latencies_ms, 0.99), 3),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--window", type=int, default=1000, help="max unconfirmed publishes")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for deliveries")
    args = parser.parse_args()
    if args.size < 8:
        parser.error("--size must be at least 8 (the timestamp)")
    result = asyncio.run(run(args))
    print(f"{result['client']}: {result['confirmed']}/{result['messages']} confirmed, "
          f"{result['received']} received in {result['seconds']} s; "
          f"publish {result['published_per_s']}/s, consume {result['consumed_per_s']}/s, "
          f"latency p50 {result['latency_ms_p50']} ms p99 {result['latency_ms_p99']} ms")
    print(json.dumps(result))
    return 0 if result["received"] == args.messages and result["confirmed"] == args.messages else 1


if __name__ == "__main__":
    sys.exit(main())
