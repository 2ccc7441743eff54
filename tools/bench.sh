#!/usr/bin/env bash
# End-to-end figures: CPU per metric of rstatsd versus the receive-only floor
# (rstatsd-loadgen sink) under the same offered load, and loss.
#
#   tools/bench.sh [RATE] [SECONDS]        (defaults: 500000 metrics/s, 10 s)
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

cat <<TABLE
| offered (metrics/s) | sink floor: received | sink floor CPU/metric | rstatsd: received | rstatsd CPU/metric | ratio |
|---|---|---|---|---|---|
| $RATE × ${SECS}s = $(field "$sent" metrics) | $floor_metrics | $floor ns | $received of $offered | $daemon_ns ns | $(python3 -c "print(round($daemon_ns / $floor, 2) if $floor else 0)")× |
TABLE
