#!/usr/bin/env bash
# Runs the same AMQP workload with our Swift client (amqp-bench) and with aio-pika, then writes both
# results and their ratio into docs/BENCHMARKS.md (AMQP section).
#
#   bench/amqp/run.sh [--messages N] [--size BYTES] [--window N] [--url amqp://...]
#
# Needs RabbitMQ on 127.0.0.1:5672 (guest/guest). Every run is bounded: N messages, and each client
# gives up waiting for deliveries after --timeout seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

URL="amqp://guest:guest@127.0.0.1:5672"
MESSAGES=100000
SIZE=100
WINDOW=1000
TIMEOUT=120
while [[ $# -gt 0 ]]; do
    case "$1" in
        --url) URL="$2"; shift 2 ;;
        --messages) MESSAGES="$2"; shift 2 ;;
        --size) SIZE="$2"; shift 2 ;;
        --window) WINDOW="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

OUT="$ROOT/.build-bench-results"
mkdir -p "$OUT"

if [[ ! -x .venv-bench/bin/python ]]; then
    python3 -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --disable-pip-version-check aio-pika

swift build -c release --product amqp-bench --scratch-path .build-release
BENCH_BIN="$(swift build -c release --scratch-path .build-release --show-bin-path)/amqp-bench"

COMMON=(--url "$URL" --messages "$MESSAGES" --size "$SIZE" --window "$WINDOW" --timeout "$TIMEOUT")

echo "== swift amqp-bench"
"$BENCH_BIN" "${COMMON[@]}" | tee "$OUT/swift.txt"
echo "== aio-pika"
.venv-bench/bin/python bench/amqp/aio_pika_bench.py "${COMMON[@]}" | tee "$OUT/aio-pika.txt"

echo "== codec only"
"$BENCH_BIN" --codec-only --messages 1000000 --size "$SIZE" | tee "$OUT/codec.txt"

tail -n 1 "$OUT/swift.txt" > "$OUT/swift.json"
tail -n 1 "$OUT/codec.txt" > "$OUT/codec.json"
tail -n 1 "$OUT/aio-pika.txt" > "$OUT/aio-pika.json"
.venv-bench/bin/python bench/amqp/write_results.py \
    --swift "$OUT/swift.json" --python "$OUT/aio-pika.json" --codec "$OUT/codec.json" \
    --command "bench/amqp/run.sh ${COMMON[*]}" \
    --doc docs/BENCHMARKS.md
