#!/usr/bin/env bash
# Many idle connections on ONE machine across several chat nodes joined through RabbitMQ:
# every node gets its own sio-bench process (one process may hold at most ~19,900 sockets
# here), all clients answer heartbeats during the hold, and the totals are summed.
#
#   bench/idle-cluster/run.sh [--nodes 6] [--connections 100000] [--hold 60] [--rate 150]
#                             [--ping-interval-ms 25000] [--skip-build] [--out FILE]
#
# --rate is connections per second per node while ramping up (each arrival costs the chat a
# cluster-wide presence lookup, so the broker sets the pace). Needs RabbitMQ on
# 127.0.0.1:5672 (scripts/rabbitmq start). Servers listen on 127.0.0.1:3600.. and are
# stopped by PID at the end. Prints a summary and one JSON line; --out appends a markdown
# section to FILE.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

nodes=6 connections=100000 hold=60 rate=150 ping_ms=25000 skip_build=0 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) nodes="$2"; shift ;;
        --connections) connections="$2"; shift ;;
        --hold) hold="$2"; shift ;;
        --rate) rate="$2"; shift ;;
        --ping-interval-ms) ping_ms="$2"; shift ;;
        --skip-build) skip_build=1 ;;
        --out) out="$2"; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

per_node=$(( (connections + nodes - 1) / nodes ))
if [ "$per_node" -gt 19000 ]; then
    echo "at most 19,000 connections per node (open-file limit); use more nodes" >&2; exit 2
fi
rabbitmq-diagnostics -q ping >/dev/null 2>&1 || { echo "RabbitMQ is not running (scripts/rabbitmq start)" >&2; exit 1; }
. "$root/bench/lib/vhost.sh"
bench_vhost_open bench-idle-cluster || { echo "could not create a RabbitMQ vhost (scripts/rabbitmq start?)" >&2; exit 1; }

[ "$skip_build" = 1 ] || { swift build -c release --product chat; swift build -c release --product sio-bench; }
bin="$(swift build -c release --show-bin-path)"

work="$root/.tmp/idle-cluster"
rm -rf "$work"; mkdir -p "$work"
server_pids=() bench_pids=()
cleanup() {
    for pid in "${bench_pids[@]:-}" "${server_pids[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    bench_vhost_close || true
}
trap cleanup EXIT

log() { echo "[idle-cluster $(date -u +%H:%M:%S)] $*" >&2; }

for i in $(seq 0 $((nodes - 1))); do
    port=$((3600 + i))
    ( ulimit -n "$(ulimit -Hn)"; NODE_PORT="$port" HOST=127.0.0.1 ADAPTER=rabbitmq AMQP_URL="$amqp_url" NODE_NAME="idle-$i" \
        PING_INTERVAL_MS="$ping_ms" MAX_SESSIONS_PER_ADDRESS=0 HANDSHAKE_RATE=0 CONNECT_RATE_LIMIT=1000000 CONNECT_BURST=1000000 LOG_LEVEL=warning exec "$bin/chat" ) > "$work/node-$i.log" 2>&1 &
    server_pids+=($!)
done
for i in $(seq 0 $((nodes - 1))); do
    port=$((3600 + i))
    for _ in $(seq 1 300); do
        curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        kill -0 "${server_pids[$i]}" 2>/dev/null || { log "node $port exited: $(tail -n 2 "$work/node-$i.log")"; exit 1; }
        sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { log "node $port not ready"; exit 1; }
done
log "$nodes chat nodes ready; $per_node connections each at $rate/s, held $hold s"

rss_total() { local sum=0 pid; for pid in "${server_pids[@]}"; do sum=$((sum + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status"))); done; echo "$sum"; }
rss_before=$(rss_total)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started=$(date +%s)
for i in $(seq 0 $((nodes - 1))); do
    ( ulimit -n "$(ulimit -Hn)"; exec "$bin/sio-bench" idle --url "http://127.0.0.1:$((3600 + i))" --server-pid "${server_pids[$i]}" \
        --protocol chat --label "node-$i" --connections "$per_node" --duration "$hold" --connect-rate "$rate" \
        --connect-timeout-ms 60000 --threads 1 ) > "$work/bench-$i.out" 2>&1 &
    bench_pids+=($!)
done
# Sample the cluster-wide RSS while everyone is connected (the benches report per node only).
peak_rss=0
while :; do
    running=0
    for pid in "${bench_pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
    [ "$running" = 1 ] || break
    rss=$(rss_total); [ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
    sleep 2
done
for pid in "${bench_pids[@]}"; do wait "$pid" || true; done
bench_pids=()
elapsed=$(( $(date +%s) - started ))
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$work" "$nodes" "$per_node" "$hold" "$rss_before" "$peak_rss" "$elapsed" "$load_before" "$load_after" "$rate" "$ping_ms" "$out" <<'PY'
import json, sys, pathlib, datetime, subprocess
work, nodes, per_node, hold, rss_before, peak_rss, elapsed, load_before, load_after, rate, ping_ms, out = sys.argv[1:]
nodes, per_node, hold, rss_before, peak_rss = int(nodes), int(per_node), int(hold), int(rss_before), int(peak_rss)
rows = []
for i in range(nodes):
    text = pathlib.Path(work, f"bench-{i}.out").read_text(errors="replace").strip().splitlines()
    line = next((l for l in reversed(text) if l.startswith("{")), None)
    rows.append(json.loads(line) if line else {"label": f"node-{i}", "error": (text[-1] if text else "no output")})
get = lambda key: sum(r.get(key, 0) or 0 for r in rows)
requested, connected, alive = nodes * per_node, get("connected"), get("alive_at_end")
summary = {
    "scenario": "idle-cluster", "nodes": nodes, "requested": requested, "connected": connected,
    "failed": get("failed"), "alive_at_end": alive, "dropped_during_hold": get("dropped_during_hold"),
    "pings_answered": get("pings_answered"), "hold_seconds": hold,
    "ramp_seconds_max": max((r.get("ramp_seconds") or 0) for r in rows),
    "server_rss_kib_before": rss_before, "server_rss_kib_peak": peak_rss,
    "server_kib_per_connection": round((peak_rss - rss_before) / alive, 2) if alive else None,
    "wall_seconds": int(elapsed), "load_before": load_before, "load_after": load_after,
}
print(f"idle-cluster: {alive:,} of {requested:,} connections up after {hold} s on {nodes} nodes "
      f"({summary['dropped_during_hold']} dropped, {summary['failed']} failed, {summary['pings_answered']:,} pings answered); "
      f"servers {rss_before/1024:.0f} -> {peak_rss/1024:.0f} MiB = {summary['server_kib_per_connection']} KiB per connection")
print(json.dumps(summary))
if out:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "", "## Idle connections across a RabbitMQ cluster on one machine", "",
        f"Measured {when} by `bench/idle-cluster/run.sh --nodes {nodes} --connections {requested} --hold {hold} --rate {rate}` "
        f"(chat nodes with `ADAPTER=rabbitmq`, one sio-bench per node, ping interval {ping_ms} ms). "
        f"Load average {load_before} before, {load_after} after.", "",
        "| node | connected | failed | up at end | dropped during hold | pings answered | ramp s | server KiB per connection |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r.get('label')} | {r.get('connected', 0):,} | {r.get('failed', 0):,} | {r.get('alive_at_end', 0):,} | "
                     f"{r.get('dropped_during_hold', 0):,} | {r.get('pings_answered', 0):,} | {r.get('ramp_seconds', 0)} | {r.get('server_kib_per_connection')} |")
    lines.append(f"| **all** | **{connected:,}** | **{summary['failed']:,}** | **{alive:,}** | **{summary['dropped_during_hold']:,}** | "
                 f"**{summary['pings_answered']:,}** | {summary['ramp_seconds_max']} | **{summary['server_kib_per_connection']}** |")
    if requested < 100_000:
        verdict = "not the target size"
    else:
        verdict = "met" if alive == requested and summary["dropped_during_hold"] == 0 and summary["failed"] == 0 else "MISSED"
    lines += ["", f"Target (100,000 connections across six nodes, all answering heartbeats for a minute): **{verdict}**. "
              f"Servers' total RSS {rss_before/1024:.0f} MiB before the ramp, {peak_rss/1024:.0f} MiB at the peak."]
    with open(out, "a") as f:
        f.write("\n".join(lines) + "\n")
PY
