# Builds the "## Socket.IO server" section of docs/BENCHMARKS.md from the JSON lines of
# sio-bench; leaves every other section of the file as it is.
import argparse, json, os, re

ap = argparse.ArgumentParser()
for flag in ("results", "out", "commands", "ours-name", "big", "machine", "versions", "load", "fd-limit"):
    ap.add_argument("--" + flag, required=True)
args = ap.parse_args()

def load(name):
    path = os.path.join(args.results, name + ".json")
    try:
        with open(path) as f:
            return json.loads(f.read().strip())
    except (OSError, ValueError):
        return None

def skipped(name):
    path = os.path.join(args.results, name + ".skipped")
    return open(path).read().strip() if os.path.exists(path) else None

def num(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"

rows = []  # metric, ours, peer, ratio, floor, ours/floor, target, verdict

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"

def verdict(value, target, higher_is_better=True, tolerance=0.95):
    if value is None:
        return "not measured"
    if target is None:
        return ""
    ok = value >= target * tolerance if higher_is_better else value <= target
    return "met" if ok else "MISSED"

def add(scenario, metric, key, higher=True, digits=1, target=None, tol=0.95, fmt=None):
    o, p, fl = load("ours-" + scenario), load("peer-" + scenario), load("floor-" + scenario)
    ov = o.get(key) if o else None
    pv = p.get(key) if p else None
    fv = fl.get(key) if fl else None
    show = fmt or (lambda v: num(v, digits))
    ours_cell = show(ov) if o else (("not run: " + skipped("ours-" + scenario)) if skipped("ours-" + scenario) else "not run")
    peer_cell = show(pv) if p else (("not run: " + skipped("peer-" + scenario)) if skipped("peer-" + scenario) else "not run")
    tgt = target(o) if callable(target) else target
    tgt_cell = show(tgt) if tgt is not None else ""
    v = verdict(ov, tgt, higher, tol) if (tgt is not None and o) else ("not run" if (tgt is not None or (callable(target) and not o)) else "")
    floor_cell = show(fv) if fl else ""
    rows.append((scenario, metric + (" (higher is better)" if higher else " (lower is better)"), ours_cell, peer_cell, ratio(ov, pv),
                 floor_cell, ratio(ov, fv) if fl else "", tgt_cell, v))

add("idle", "connections up at end", "alive_at_end", target=lambda o: o and o.get("requested"), tol=1.0)
add("idle", "server KiB per connection", "server_kib_per_connection", higher=False)
add("idle", "connect p99 ms during ramp", "connect_p99_ms", higher=False, digits=2)
add("idle", "server CPU ms during the hold", "server_cpu_ms_during_hold", higher=False, digits=0)
for sc in ("fanout", "fanout-light", "cluster"):
    add(sc, "deliveries/s", "deliveries_per_s", digits=0, target=lambda o: o and o.get("target_deliveries_per_s"))
    add(sc, "delivery ratio", "delivery_ratio", digits=4, target=1.0, tol=1.0, fmt=lambda v: "n/a" if v is None else f"{v:.4f}")
    add(sc, "latency p50 ms", "latency_p50_ms", higher=False, digits=2)
    add(sc, "latency p99 ms", "latency_p99_ms", higher=False, digits=2)
    add(sc, "latency p99.9 ms", "latency_p999_ms", higher=False, digits=2)
    add(sc, "server CPU ms per 1,000 deliveries", "server_cpu_ms_per_1000_deliveries", higher=False, digits=2)
    add(sc, "messages sent (of msgs/s x duration)", "sent")
    add(sc, "load generator CPU ms per 1,000 deliveries", "bench_cpu_ms_per_1000_deliveries", higher=False, digits=2)
add("connect-storm", "connections/s", "connections_per_s", digits=0, target=lambda o: o and o.get("target_rate_per_s"))
add("connect-storm", "failed connections", "failed", higher=False, target=0)
add("connect-storm", "connect p99 ms", "connect_p99_ms", higher=False, digits=1)
add("connect-storm", "server CPU ms per connection", "server_cpu_ms_per_connection", higher=False, digits=3)
def recovery_target(o):
    # A server that sends no pid offers no recovery: there is nothing to miss or meet.
    return o.get("dropped") if o and o.get("had_pid") else None
add("recover-storm", "sessions recovered", "recovered", target=recovery_target, tol=1.0,
    fmt=lambda v: "n/a" if v is None else f"{int(v):,}")
add("recover-storm", "got the message sent while away", "missed_message_replayed", target=recovery_target, tol=1.0)
add("recover-storm", "clients given a pid (recovery offered)", "had_pid", target=None)
add("recover-storm", "reconnects/s", "reconnects_per_s", digits=0)

def sizes():
    lines = []
    for sc in ("idle", "fanout", "fanout-light", "cluster", "connect-storm", "recover-storm"):
        o = load("ours-" + sc) or load("peer-" + sc)
        if not o:
            continue
        if sc == "idle":
            lines.append(f"- idle: {num(o.get('requested'))} connections held {o.get('hold_seconds')} s (pings every 5 s)")
        elif sc in ("fanout", "fanout-light", "cluster"):
            lines.append(f"- {sc}: {num(o.get('clients'))} clients on {o.get('nodes')} node(s), {o.get('rooms')} room, "
                         f"{o.get('senders')} senders, {num(o.get('target_msgs_per_s'))} msgs/s total for {o.get('duration_seconds')} s "
                         f"(= {num(o.get('target_deliveries_per_s'), 0)} deliveries/s wanted)")
        elif sc == "connect-storm":
            lines.append(f"- connect-storm: {num(o.get('requested'))} connections at {num(o.get('target_rate_per_s'))}/s")
        else:
            lines.append(f"- recover-storm: {num(o.get('clients'))} clients, all but one dropped and reconnected at once")
    return "\n".join(lines)

with open(args.commands) as f:
    commands = "".join(sorted(set(f.readlines()), key=lambda l: l))

table = ["| scenario | metric | ours | python-socketio | ours / peer | floor (C epoll) | ours / floor | target | ours vs target |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
for r in rows:
    table.append("| " + " | ".join(str(c) for c in r) + " |")

section = f"""## Socket.IO server

Written by `scripts/bench{' --big' if args.big == '1' else ''}` (sio-bench against our server, the python-socketio
peer and the floor in one run). Our server: {args.ours_name}. Peer: `bench/peers/python/server.py`.
Floor: `bench/floor/floor.c`, a minimal single-threaded C epoll server doing the same WebSocket
fan-out (no polling, no acks, no recovery, no validation): what the machine costs.

- Machine: {args.machine}; open-file hard limit {args.fd_limit} (one process holds at most ~19,900 connections).
- Versions: {args.versions}.
- Load: {args.load}. The machine's 2 cores are shared by the server, the load generator (and the
  broker for the cluster run); other engineers may have been building at the same time, so compare
  the two servers within one run (and CPU per 1,000 deliveries) rather than absolute rates.
- Sizes:

{sizes()}

{chr(10).join(table)}

"met" / "MISSED": the run's own target (connections requested, deliveries/s wanted = msgs/s x room size,
all messages delivered, all sessions recovered). Rates within 5% of the target count as met; counts must be exact.
Numbers are what sio-bench measured and counted; "n/a" means not measured (e.g. python-socketio sends no `pid`,
so it has no connection state recovery to count).

Exact commands of this run:

```
{commands.rstrip()}
```
"""

text = open(args.out).read() if os.path.exists(args.out) else "# Benchmarks\n\n"
pattern = re.compile(r"^## Socket\.IO server\n.*?(?=^## |\Z)", re.S | re.M)
if pattern.search(text):
    text = pattern.sub(lambda m: section + "\n", text)
else:
    text = text.rstrip("\n") + "\n\n" + section
os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
with open(args.out, "w") as f:
    f.write(text.rstrip("\n") + "\n")
