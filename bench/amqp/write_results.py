#!/usr/bin/env python3
"""Writes the AMQP benchmark results (Swift amqp-bench vs aio-pika) into docs/BENCHMARKS.md.

Only the text between the AMQP markers is replaced, so other sections of the file are left alone;
the section is appended when the markers are missing.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess

START = "<!-- amqp-bench:start -->"
END = "<!-- amqp-bench:end -->"

ROWS = [
    ("published_per_s", "published + confirmed / s", True),
    ("consumed_per_s", "consumed / s", True),
    ("latency_ms_p50", "latency p50 (ms)", False),
    ("latency_ms_p99", "latency p99 (ms)", False),
    ("seconds", "wall time (s)", False),
    ("client_cpu_ms_per_1000", "client CPU ms per 1,000 messages", False),
    ("confirmed", "confirmed", None),
    ("received", "received", None),
]


def command_output(*command):
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_summary():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}"


def rabbitmq_version():
    out = command_output("rabbitmqctl", "version")
    return out.splitlines()[-1] if out else "unknown"


def render(swift, python, command, codec=None, notes=()):
    lines = [START, "## AMQP client: amqp-bench (Swift) vs aio-pika", ""]
    lines.append(f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} "
                 f"on {machine_summary()}; RabbitMQ {rabbitmq_version()}, "
                 f"{command_output('swift', '--version').splitlines()[0] if command_output('swift', '--version') else 'swift ?'}, "
                 f"{swift.get('client', 'amqp-bench')} vs {python.get('client', 'aio-pika')}.")
    lines.append("")
    lines.append(f"Workload: {swift['messages']} messages of {swift.get('size', '?')} bytes to a server-named "
                 "exclusive queue via the default exchange, publisher confirms with a bounded window of "
                 "unconfirmed publishes, one no-ack consumer on a second channel of the same connection, "
                 "latency = publish call to delivery (timestamp in the body). Broker, client and load share "
                 "the same 2 cores, so numbers compare clients, not absolute capacity.")
    lines.append("")
    lines.append(f"Command: `{command}`")
    lines.append("")
    lines.append("| metric | Swift amqp-bench | aio-pika | Swift / aio-pika |")
    lines.append("| --- | ---: | ---: | ---: |")
    for key, label, higher_is_better in ROWS:
        a, b = swift.get(key), python.get(key)
        ratio = ""
        if higher_is_better is not None and isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            ratio = f"{a / b:.2f}x"
        lines.append(f"| {label} | {a} | {b} | {ratio} |")
    lines.append("")
    lines.append("Throughput ratios above 1 and latency ratios below 1 favour the Swift client.")
    if codec:
        lines.append("")
        lines.append(f"Codec alone (`amqp-bench --codec-only --messages {codec['messages']} --size {codec['size']}`, "
                     f"no broker, CPU time of one process): encode basic.publish + header + body "
                     f"{codec['encode_per_s']:,.0f} messages per CPU-second, decode basic.deliver + header + body "
                     f"{codec['decode_per_s']:,.0f} per CPU-second.")
    for note in notes:
        lines.append("")
        lines.append(note)
    lines.append(END)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swift", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--command", default="bench/amqp/run.sh")
    parser.add_argument("--doc", default="docs/BENCHMARKS.md")
    parser.add_argument("--codec", help="JSON line of amqp-bench --codec-only")
    parser.add_argument("--note", action="append", default=[], help="extra paragraph (repeatable)")
    args = parser.parse_args()
    with open(args.swift) as fh:
        swift = json.load(fh)
    with open(args.python) as fh:
        python = json.load(fh)
    codec = None
    if args.codec:
        with open(args.codec) as fh:
            codec = json.load(fh)
    section = render(swift, python, args.command, codec, args.note)

    existing = ""
    if os.path.exists(args.doc):
        with open(args.doc) as fh:
            existing = fh.read()
    if START in existing and END in existing:
        before = existing.split(START, 1)[0]
        after = existing.split(END, 1)[1]
        text = before + section + after
    else:
        text = (existing.rstrip() + "\n\n" if existing else "# Benchmarks\n\n") + section + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.doc)), exist_ok=True)
    with open(args.doc, "w") as fh:
        fh.write(text)
    print(section)


if __name__ == "__main__":
    main()
