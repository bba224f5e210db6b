#!/usr/bin/env bash
# Session records written ahead (docs/CLUSTER.md, "A crashed node's clients"): what they cost
# and what they buy, on three chat nodes over RabbitMQ.
#
#   bench/crash/run.sh --bin DIR --label NAME [--storm 2000] [--storm-rate 500] [--recover 500] [--crash 2000]
#                      [--only "connect-storm recover-storm crash-storm"]
#
# For each scenario: fresh vhost, three `chat --adapter rabbitmq` nodes from DIR on 127.0.0.1:3410-3412,
# and sio-bench (this checkout's debug build, or $SIO_BENCH: scripts/bench passes its release one) against them:
#   connect-storm  N clients connect to node a: CPU of all three nodes per connection, cluster
#                  messages and AMQP messages appended to the recovery stream per connection
#   recover-storm  M clients of node a drop and come back to node a (the single-node recover storm)
#   crash-storm    K clients on node a; node a is SIGKILLed; they come back to b and c
# One JSON line per scenario goes to .tmp/bench/crash/NAME-SCENARIO.json. Every process started
# here is stopped by its PID.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

bin="" label="" storm=2000 storm_rate=500 recover=500 crash=2000 only="connect-storm recover-storm crash-storm"
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift ;;
        --label) label="$2"; shift ;;
        --storm) storm="$2"; shift ;;
        --storm-rate) storm_rate="$2"; shift ;;
        --recover) recover="$2"; shift ;;
        --crash) crash="$2"; shift ;;
        --only) only="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$bin" ] && [ -n "$label" ] || { echo "--bin and --label are required" >&2; exit 2; }
bench="${SIO_BENCH:-$root/.build/debug/sio-bench}"
[ -x "$bench" ] || { echo "build sio-bench first: swift build --product sio-bench" >&2; exit 1; }
work="$root/.tmp/bench/crash"
mkdir -p "$work"
. "$root/bench/lib/vhost.sh"
log() { echo "[crash-bench $(date -u +%H:%M:%S)] $*" >&2; }

pids=()
stop_all() {
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
    pids=()
    bench_vhost_close || true
}
trap stop_all EXIT

start_nodes() {
    bench_vhost_open "bench-crash-$RANDOM" || { log "no vhost (is RabbitMQ up?)"; exit 1; }
    pids=()
    for i in 0 1 2; do
        local port=$((3410 + i))
        ( ulimit -n "$(ulimit -Hn)"; NODE_PORT="$port" HOST=127.0.0.1 ADAPTER=rabbitmq AMQP_URL="$amqp_url" NODE_NAME="n$i" \
          PING_INTERVAL_MS=5000 RATE_LIMIT=100000 RATE_BURST=100000 MAX_SESSIONS_PER_ADDRESS=0 HANDSHAKE_RATE=0 \
          CONNECT_RATE_LIMIT=1000000 CONNECT_BURST=1000000 LOG_LEVEL=warning exec "$bin/chat" ) > "$work/$label-node$i.log" 2>&1 &
        pids+=("$!")
    done
    for i in 0 1 2; do
        local ok=0
        for _ in $(seq 1 150); do
            curl -sf "http://127.0.0.1:$((3410 + i))/readyz" >/dev/null 2>&1 && { ok=1; break; }
            sleep 0.2
        done
        [ "$ok" = 1 ] || { log "node $i not ready; see $work/$label-node$i.log"; exit 1; }
    done
    sleep 2  # membership settles
}

metric() {  # port name -> value (0 when absent)
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name { print $2; found=1 } END { if (!found) print 0 }'
}
stream_messages() {  # AMQP messages in the namespace's recovery stream
    rabbitmqctl -q list_queues -p "$bench_vhost" name messages 2>/dev/null | awk '$1 ~ /#recovery$/ { sum += $2 } END { print sum + 0 }'
}
cluster_sum() {  # metric name, summed over the three nodes (0 where a build lacks it)
    local total=0
    for i in 0 1 2; do total=$(( total + $(metric $((3410 + i)) "$1" | cut -d. -f1) )); done
    echo "$total"
}

run_scenario() {  # name
    local name="$1" out="$work/$label-$1.json"
    start_nodes
    local before_msgs before_stream before_publishes after_msgs after_stream after_publishes line
    before_msgs="$(cluster_sum chat_cluster_messages_published)"; before_stream="$(stream_messages)"
    before_publishes="$(cluster_sum chat_cluster_amqp_publishes)"
    case "$name" in
        connect-storm)
            line="$("$bench" connect-storm --url http://127.0.0.1:3410 --server-pid "${pids[0]}" --server-pid "${pids[1]}" --server-pid "${pids[2]}" \
                    --connections "$storm" --rate "$storm_rate" --label "$label" | tail -1)" ;;
        recover-storm)
            line="$("$bench" recover-storm --url http://127.0.0.1:3410 --server-pid "${pids[0]}" --server-pid "${pids[1]}" --server-pid "${pids[2]}" \
                    --clients "$recover" --label "$label" | tail -1)" ;;
        crash-storm)
            line="$("$bench" crash-storm --url http://127.0.0.1:3410 --kill-pid "${pids[0]}" --server-pid "${pids[1]}" --server-pid "${pids[2]}" \
                    --reconnect-url http://127.0.0.1:3411 --reconnect-url http://127.0.0.1:3412 --clients "$crash" --label "$label" \
                    --connect-rate 1000 --connect-timeout-ms 30000 | tail -1)" ;;
    esac
    sleep 1
    after_msgs="$(cluster_sum chat_cluster_messages_published)"; after_stream="$(stream_messages)"
    after_publishes="$(cluster_sum chat_cluster_amqp_publishes)"
    python3 - "$line" "$((after_msgs - before_msgs))" "$((after_stream - before_stream))" "$((after_publishes - before_publishes))" > "$out" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
report["cluster_messages_published"] = int(sys.argv[2])
report["recovery_stream_amqp_messages"] = int(sys.argv[3])
report["amqp_publishes"] = int(sys.argv[4])  # 0 from a chat without the metric
print(json.dumps(report))
PY
    log "$name: $(cat "$out")"
    stop_all
}

for scenario in $only; do run_scenario "$scenario"; done
