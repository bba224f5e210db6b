#!/usr/bin/env bash
# Churn: rounds of connect-hold-close (sio-bench churn) against the sio-conformance fixture
# and against the chat through RabbitMQ; the server's RSS after each round and the bytes it
# keeps per connection cycle. Writes the "## Churn" section of docs/BENCHMARKS.md from every
# result under .tmp/bench/churn/ (so a run of an older build, given --bin and --label, sits
# beside the current one in the same table).
#
#   bench/churn/run.sh [--rounds 20] [--warm-up-rounds 3] [--connections 2000] [--hold-ms 2000] [--skip-build]
#                      [--bin DIR] [--label NAME] [--only "fixture chat"] [--out FILE]
#
# --bin: a release bin folder holding sio-conformance and chat (default: this checkout's, built
# here unless --skip-build); sio-bench always comes from this checkout. Servers listen on
# 127.0.0.1:3700/3701 and are stopped by PID. The chat needs RabbitMQ on 127.0.0.1:5672; it runs in
# a vhost made for the run (and deleted after it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

rounds=20 warm_up=3 connections=2000 hold_ms=2000 skip_build=0 bin="" label="current" only="fixture chat" out="docs/BENCHMARKS.md"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift ;;
        --warm-up-rounds) warm_up="$2"; shift ;;
        --connections) connections="$2"; shift ;;
        --hold-ms) hold_ms="$2"; shift ;;
        --skip-build) skip_build=1 ;;
        --bin) bin="$2"; shift ;;
        --label) label="$2"; shift ;;
        --only) only="$2"; shift ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "[churn $(date -u +%H:%M:%S)] $*" >&2; }
scratch="${SWIFT_SCRATCH:-$root/.build}"
if [ "$skip_build" = 0 ]; then
    log "building release binaries"
    swift build --scratch-path "$scratch" -c release --product sio-bench
    [ -n "$bin" ] || { swift build --scratch-path "$scratch" -c release --product sio-conformance
                       swift build --scratch-path "$scratch" -c release --product chat; }
fi
own_bin="$(swift build --scratch-path "$scratch" -c release --show-bin-path)"
bin="${bin:-$own_bin}"
bench="$own_bin/sio-bench"
. "$root/bench/lib/vhost.sh"
work="$root/.tmp/bench/churn"
mkdir -p "$work"
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null || true
    bench_vhost_close || true
}
trap cleanup EXIT
if [[ " $only " == *" chat "* ]]; then
    bench_vhost_open bench-churn || { log "could not create a RabbitMQ vhost (is the broker up? scripts/rabbitmq start)"; exit 1; }
fi

wait_port() {  # port pid
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

stop() {
    kill "$1" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
}

run_churn() {  # server port protocol
    local server="$1" port="$2" protocol="$3"
    wait_port "$port" "$server_pid" || { log "$server did not start"; return 1; }
    if [ "$server" = chat ]; then
        for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
    fi
    log "$label $server: $rounds rounds of $connections"
    "$bench" churn --url "http://127.0.0.1:$port" --server-pid "$server_pid" --protocol "$protocol" --label "$label" \
        --connections "$connections" --rounds "$rounds" --hold-ms "$hold_ms" --warm-up-rounds "$warm_up" | tee "$work/$label-$server.out" >&2
    tail -n 1 "$work/$label-$server.out" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["server"]=sys.argv[1]; print(json.dumps(d))' "$server" \
        > "$work/$label-$server.json"
    stop "$server_pid"; server_pid=""
}

for server in $only; do
    case "$server" in
        fixture)
            ( ulimit -n "$(ulimit -Hn)"; exec "$bin/sio-conformance" --port 3700 --ping-interval 5000 --ping-timeout 20000 \
                --connect-timeout 20000 --web-socket-flush-gap 0 --log-level warning ) > "$work/$label-fixture.log" 2>&1 &
            server_pid=$!
            run_churn fixture 3700 conformance ;;
        chat)
            ( ulimit -n "$(ulimit -Hn)"; NODE_PORT=3701 HOST=127.0.0.1 ADAPTER=rabbitmq AMQP_URL="$amqp_url" PING_INTERVAL_MS=5000 \
                RATE_LIMIT=100000 RATE_BURST=100000 MAX_SESSIONS_PER_ADDRESS=0 HANDSHAKE_RATE=0 CONNECT_RATE_LIMIT=1000000 CONNECT_BURST=1000000 RECOVERY_WINDOW=5 LOG_LEVEL=warning exec "$bin/chat" ) > "$work/$label-chat.log" 2>&1 &
            server_pid=$!
            run_churn chat 3701 chat ;;
        *) log "unknown server $server"; exit 2 ;;
    esac
done

python3 - "$work" "$out" <<'PY'
# Rebuilds "## Churn" of the benchmarks file from every churn result on this machine.
import glob, json, os, re, sys
work, out = sys.argv[1], sys.argv[2]
results = []
for path in sorted(glob.glob(os.path.join(work, "*.json"))):
    try:
        results.append(json.load(open(path)))
    except ValueError:
        pass
rows = ["| build | server | connections x rounds | RSS at start KiB | after round 1 | after last round | bytes kept per connection cycle (rounds after the warm-up) | failed |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for r in results:
    rss = r.get("server_rss_kib_after_rounds") or [0]
    per = r.get("bytes_kept_per_connection_cycle")
    rows.append(f"| {r.get('label')} | {r.get('server')} | {r.get('connections_per_round'):,} x {r.get('rounds')} (warm-up {r.get('warm_up_rounds', 3)}) | "
                f"{r.get('server_rss_kib_start'):,} | {rss[0]:,} | {rss[-1]:,} | "
                f"{'n/a' if per is None else f'{per:,.1f}'} | {r.get('failed')} |")
detail = []
for r in results:
    detail.append(f"- {r.get('label')} / {r.get('server')}: " + ", ".join(f"{v:,}" for v in r.get("server_rss_kib_after_rounds") or []))
section = ("## Churn\n\nWritten by `bench/churn/run.sh` (also `scripts/bench --only churn`): each round opens the\n"
           "connections (WebSocket, joined to `/`, the chat's in a room each), holds them, closes them all, waits 1.5 s\n"
           "and reads the server's RSS. The chat runs through RabbitMQ with `RECOVERY_WINDOW=5`. A server that frees\n"
           "every closed connection stays flat after its allocator warms up; the bytes kept per cycle are the\n"
           "least-squares slope of RSS over the rounds after the warm-up, divided by the connections per round.\n\n"
           + "\n".join(rows) + "\n\nRSS after each round (KiB):\n\n" + "\n".join(detail) + "\n")
text = open(out).read() if os.path.exists(out) else "# Benchmarks\n\n"
pattern = re.compile(r"^## Churn\n.*?(?=^## |\Z)", re.S | re.M)
text = pattern.sub(lambda m: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text.rstrip("\n") + "\n")
PY
log "wrote $out"
