#!/usr/bin/env bash
# How much this machine's RabbitMQ takes, to put the single-client numbers of run.sh in context:
# runs P amqp-bench processes at once (one connection and one queue each, the same confirmed
# publish + consume workload), for several P, and reports the aggregate rate, the broker's CPU per
# 1,000 messages (from /proc of the beam.smp process) and the load average.
#
#   bench/amqp/broker-baseline.sh [--messages N-per-process] [--parallel "1 2 4"] [--url amqp://...]
#
# Prints one markdown table; raw JSON lines go to .build-bench-results/baseline-P-i.json.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
URL="amqp://guest:guest@127.0.0.1:5672"
MESSAGES=100000
PARALLEL="1 2 4"
WINDOW=1000
while [[ $# -gt 0 ]]; do
    case "$1" in
        --url) URL="$2"; shift 2 ;;
        --messages) MESSAGES="$2"; shift 2 ;;
        --parallel) PARALLEL="$2"; shift 2 ;;
        --window) WINDOW="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

OUT="$ROOT/.build-bench-results"
mkdir -p "$OUT"
swift build -c release --product amqp-bench --scratch-path .build-release >/dev/null
BENCH_BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/amqp-bench"

# The broker serving $URL's port (the shared node by default), asked by the node itself.
broker_pid="$(rabbitmqctl -q eval 'list_to_integer(os:getpid()).' | tr -d '[:space:]')"
ticks_per_second="$(getconf CLK_TCK)"
broker_cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }

echo "broker pid $broker_pid; $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| parallel clients | messages | wall s | aggregate published + confirmed / s | aggregate consumed / s | all confirmed + received | broker CPU ms / 1,000 msgs | load avg (1 min) after |"
echo "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
for parallel in $PARALLEL; do
    rm -f "$OUT"/baseline-"$parallel"-*.json
    cpu_before="$(broker_cpu_ticks)"
    started="$(date +%s.%N)"
    pids=()
    for index in $(seq 1 "$parallel"); do
        "$BENCH_BIN" --url "$URL" --messages "$MESSAGES" --size 100 --window "$WINDOW" --timeout 120 \
            2>/dev/null | tail -n 1 > "$OUT/baseline-$parallel-$index.json" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    finished="$(date +%s.%N)"
    cpu_after="$(broker_cpu_ticks)"
    python3 - "$parallel" "$MESSAGES" "$started" "$finished" "$cpu_before" "$cpu_after" "$ticks_per_second" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$OUT"/baseline-"$parallel"-*.json <<'PY'
import json, sys
parallel, messages, started, finished, cpu_before, cpu_after, hz, load = sys.argv[1:9]
runs = [json.load(open(path)) for path in sys.argv[9:]]
total = int(messages) * int(parallel)
wall = float(finished) - float(started)
# Aggregate = all messages / time until the slowest process finished (processes start together).
slowest = max(run["seconds"] for run in runs)
confirmed = sum(run["confirmed"] for run in runs)
received = sum(run["received"] for run in runs)
broker_ms = (int(cpu_after) - int(cpu_before)) / int(hz) * 1000
print(f"| {parallel} | {total:,} | {slowest:.2f} | {total / slowest:,.0f} | {received / slowest:,.0f} | "
      f"{'yes' if confirmed == total and received == total else f'NO ({confirmed} confirmed, {received} received)'} | "
      f"{broker_ms / total * 1000:.1f} | {load} |")
PY
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
