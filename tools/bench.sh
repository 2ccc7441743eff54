#!/usr/bin/env bash
# End-to-end figures: CPU per metric of rstatsd versus the receive-only floor
# (rstatsd-loadgen sink) under the same offered load, and loss.
#
#   tools/bench.sh [RATE] [SECONDS]        (defaults: 500000 metrics/s, 10 s)
#
# Also runs Etsy statsd (npm `statsd`, installed into a temp dir) under the same load when
# node and npm are available; ETSY=0 skips it.
#
# Load: one sender thread, 20 metrics per datagram, 1,000 counter keys, loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-500000}"
SECS="${2:-10}"
cargo build --release --locked --workspace --bins >&2
LOADGEN=target/release/rstatsd-loadgen
PORT=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SEND=(send --target "127.0.0.1:$PORT" --rate "$RATE" --duration "$SECS" --per-datagram 20
      --keys 1000 --json --quiet)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill -9 $(jobs -p) 2>/dev/null || true' EXIT

cpu_seconds() { # utime + stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# 1. The floor: a receiver that only counts.
$LOADGEN sink --listen "127.0.0.1:$PORT" --duration $((SECS + 5)) --json --quiet \
    >"$tmp/sink.json" 2>"$tmp/sink.err" &
sink=$!
until grep -q "listening on" "$tmp/sink.err"; do sleep 0.05; done
sent=$($LOADGEN "${SEND[@]}")
wait $sink
floor=$(field "$(cat "$tmp/sink.json")" cpu_ns_per_metric)
floor_metrics=$(field "$(cat "$tmp/sink.json")" metrics)

# 2. rstatsd, one receiver thread (one sender socket always lands on one receiver).
target/release/rstatsd --statsd-listen "127.0.0.1:$PORT" --no-pystatsd --receivers 1 --no-admin --no-http \
    >"$tmp/out.jsonl" 2>"$tmp/err.log" &
daemon=$!
until grep -q " ready: " "$tmp/err.log"; do sleep 0.05; done
before=$(cpu_seconds $daemon)
sent2=$($LOADGEN "${SEND[@]}")
after=$(cpu_seconds $daemon)
kill -TERM $daemon; wait $daemon
received=$(python3 -c '
import json, sys
print(int(sum(json.loads(l)["values"]["count"] for l in open(sys.argv[1])
              if l.startswith("{\"name\":\"rstatsd.metrics_received\""))))' "$tmp/out.jsonl")
offered=$(field "$sent2" metrics)
daemon_ns=$(python3 -c "print(round(($after - $before) * 1e9 / $offered, 1))")

# 3. Etsy statsd (the npm package, with node) under the same load, for a side-by-side
#    figure. Installed into a temporary directory, never into the repository. Etsy counts
#    what it received in statsd.metrics_received, printed by its console backend at each
#    (1 s) flush; it does not flush on SIGTERM, so wait for the flush after the load.
etsy="-"; etsy_ns="-"; etsy_ratio="-"
if [ "${ETSY:-1}" = 1 ] && command -v node >/dev/null && command -v npm >/dev/null; then
    npm install --prefix "$tmp/etsy" --no-audit --no-fund --silent statsd@0.9.0 >/dev/null 2>&1 ||
        echo "bench: npm install statsd failed; skipping Etsy statsd" >&2
fi
if [ -f "$tmp/etsy/node_modules/statsd/stats.js" ]; then
    cat >"$tmp/etsy.js" <<JS
{ port: $PORT, address: "127.0.0.1", mgmt_port: 0, flushInterval: 1000,
  backends: ["./backends/console"], console: { prettyprint: false } }
JS
    (cd "$tmp/etsy/node_modules/statsd" && exec node stats.js "$tmp/etsy.js" >"$tmp/etsy.out" 2>&1) &
    node_pid=$!
    until grep -q "server is up" "$tmp/etsy.out" 2>/dev/null; do sleep 0.05; done
    node_proc=$(pgrep -P $node_pid node || echo $node_pid)
    before=$(cpu_seconds "$node_proc")
    sent3=$($LOADGEN "${SEND[@]}")
    # Two flush intervals: everything received is flushed and printed.
    sleep 2.5
    after=$(cpu_seconds "$node_proc")
    kill -TERM "$node_proc" $node_pid 2>/dev/null || true
    wait $node_pid 2>/dev/null || true
    etsy_offered=$(field "$sent3" metrics)
    # The first statsd.metrics_received after each flush header is the counter (the second
    # is its per-second rate).
    etsy=$(python3 -c '
import re, sys
flushes = open(sys.argv[1]).read().split("Flushing stats at")[1:]
print(sum(int(m.group(1)) for m in (re.search(r"statsd\.metrics_received.: (\d+)", f) for f in flushes) if m))' "$tmp/etsy.out")
    etsy_ns=$(python3 -c "print(round(($after - $before) * 1e9 / $etsy_offered, 1))")
    etsy_ratio=$(python3 -c "print(round($etsy_ns / $floor, 2) if $floor else 0)")
    etsy="$etsy of $etsy_offered"
fi

cat <<TABLE
| offered (metrics/s) | sink floor: received | sink floor CPU/metric | rstatsd: received | rstatsd CPU/metric | ratio | Etsy statsd 0.9.0: received | Etsy CPU/metric | ratio |
|---|---|---|---|---|---|---|---|---|
| $RATE × ${SECS}s = $(field "$sent" metrics) | $floor_metrics | $floor ns | $received of $offered | $daemon_ns ns | $(python3 -c "print(round($daemon_ns / $floor, 2) if $floor else 0)")× | $etsy | $etsy_ns ns | ${etsy_ratio}× |
TABLE
