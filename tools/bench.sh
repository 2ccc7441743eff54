#!/usr/bin/env bash
# End-to-end figures: CPU per metric of rstatsd versus the receive-only floor
# (rstatsd-loadgen sink) under the same offered load, and loss, for each scenario.
#
#   tools/bench.sh [SECONDS]              (default 10 s of load per cell)
#
# Environment:
#   SCENARIOS  space-separated PER_DATAGRAM:RATE cells, RATE 0 = as fast as the senders go
#              (default: "20:0 20:200000 20:500000 1:50000 1:200000 1:0")
#   TUNED      extra rstatsd flags for a "tuned" column (e.g. "--receivers 1"); empty skips it
#   RSTATSD    the rstatsd binary (default target/release/rstatsd, built first)
#   LOADGEN    the loadgen binary (default target/release/rstatsd-loadgen)
#   ETSY=1     also run Etsy statsd (npm `statsd` 0.9.0, installed into a temp dir; needs
#              node and a reachable npm registry)
#
# Load: `rstatsd-loadgen send` with 4 sender threads (one socket each), 1,000 keys, the mix
# c=80,ms=10,g=10, over loopback. rstatsd runs with its default configuration (one
# listener, the default receiver count for this machine) and 2 s flushes; its loss is
# read from its own counters (`--verify`). CPU is user + system time of the receiving
# process, per metric it received. Each cell runs the floor first, then the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
SCENARIOS="${SCENARIOS:-20:0 20:200000 20:500000 1:50000 1:200000 1:0}"
TUNED="${TUNED:-}"
if [ -z "${RSTATSD:-}" ]; then
    cargo build --release --locked --workspace --bins >&2
fi
RSTATSD="${RSTATSD:-target/release/rstatsd}"
LOADGEN="${LOADGEN:-target/release/rstatsd-loadgen}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; kill -9 $(jobs -p) 2>/dev/null || true' EXIT

port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
tcp_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cpu_seconds() { # utime + stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], '-'))" "$1" "$2"; }
calc() { python3 -c "print($1)"; }

send_args() { # PORT PER_DATAGRAM RATE
    echo send --target "127.0.0.1:$1" --rate "$3" --duration "$SECS" --threads 4 --keys 1000 \
        --per-datagram "$2" --mix c=80,ms=10,g=10 --json --quiet
}

# The floor: a receiver that only counts. Prints "ns_per_metric received offered".
floor() {
    local p
    p=$(port)
    $LOADGEN sink --listen "127.0.0.1:$p" --duration $((SECS + 3)) --json --quiet \
        >"$tmp/sink.json" 2>"$tmp/sink.err" &
    local sink=$!
    until grep -q "listening on" "$tmp/sink.err"; do sleep 0.05; done
    local sent
    # shellcheck disable=SC2046
    sent=$($LOADGEN $(send_args "$p" "$1" "$2"))
    wait $sink
    local s
    s=$(cat "$tmp/sink.json")
    echo "$(field "$s" cpu_ns_per_metric) $(field "$s" metrics) $(field "$sent" metrics)"
}

# CPU ticks of each receiver thread of a pid, one "tid ticks" line each.
receiver_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        case "$(cat "$t/comm")" in
        recv-*) echo "${t##*/} $(awk '{ print $14 + $15 }' "$t/stat")" ;;
        esac
    done
}

# How the receivers shared the work: each one's share of their CPU, largest first ("64/36").
# The kernel spreads sender sockets over the receivers by hash, so with 4 sender sockets and
# 2 receivers a run may give 2:2, 3:1 or 4:0; this shows which, since loss follows it.
receiver_split() {
    python3 - "$1" "$2" <<'PY'
import sys
def read(path):
    return dict(line.split() for line in open(path) if line.strip())
before, after = read(sys.argv[1]), read(sys.argv[2])
used = sorted((int(v) - int(before.get(t, 0)) for t, v in after.items()), reverse=True)
total = sum(used)
print("/".join(str(round(100 * u / total)) for u in used) if total else "-")
PY
}

# rstatsd with extra flags. Prints "ns_per_metric received offered loss_percent split".
daemon() {
    local per=$1 rate=$2
    shift 2
    local p h
    p=$(port)
    h=$(tcp_port)
    # shellcheck disable=SC2068
    $RSTATSD --statsd-listen "127.0.0.1:$p" --no-pystatsd --no-admin --http-listen "127.0.0.1:$h" \
        --flush-interval-ms 2000 $@ >/dev/null 2>"$tmp/daemon.err" &
    local d=$!
    until grep -q " ready: " "$tmp/daemon.err"; do sleep 0.05; done
    local before after out
    before=$(cpu_seconds $d)
    receiver_ticks $d >"$tmp/ticks.before"
    # shellcheck disable=SC2046
    out=$($LOADGEN $(send_args "$p" "$per" "$rate") --verify "127.0.0.1:$h" --verify-settle 5)
    after=$(cpu_seconds $d)
    receiver_ticks $d >"$tmp/ticks.after"
    kill -TERM $d
    wait $d
    local received
    received=$(field "$out" received)
    echo "$(calc "round(($after - $before) * 1e9 / max($received, 1), 1)") $received $(field "$out" metrics) $(field "$out" loss_percent) $(receiver_split "$tmp/ticks.before" "$tmp/ticks.after")"
}

# Etsy statsd under the same load (see the README's side-by-side table). Etsy counts what it
# received in statsd.metrics_received, printed by its console backend at each (1 s) flush.
etsy() {
    local p
    p=$(port)
    cat >"$tmp/etsy.js" <<JS
{ port: $p, address: "127.0.0.1", mgmt_port: 0, flushInterval: 1000,
  backends: ["./backends/console"], console: { prettyprint: false } }
JS
    (cd "$tmp/etsy/node_modules/statsd" && exec node stats.js "$tmp/etsy.js" >"$tmp/etsy.out" 2>&1) &
    local node_pid=$!
    until grep -q "server is up" "$tmp/etsy.out" 2>/dev/null; do sleep 0.05; done
    local node_proc before after sent
    node_proc=$(pgrep -P $node_pid node || echo $node_pid)
    before=$(cpu_seconds "$node_proc")
    # shellcheck disable=SC2046
    sent=$($LOADGEN $(send_args "$p" "$1" "$2"))
    # Etsy does not flush on SIGTERM: wait for two flushes.
    sleep 2.5
    after=$(cpu_seconds "$node_proc")
    kill -TERM "$node_proc" $node_pid 2>/dev/null || true
    wait $node_pid 2>/dev/null || true
    local received
    received=$(python3 -c '
import re, sys
flushes = open(sys.argv[1]).read().split("Flushing stats at")[1:]
print(sum(int(m.group(1)) for m in (re.search(r"statsd\.metrics_received.: (\d+)", f) for f in flushes) if m))' "$tmp/etsy.out")
    local offered
    offered=$(field "$sent" metrics)
    echo "$(calc "round(($after - $before) * 1e9 / max($received, 1), 1)") $received $offered $(calc "round(100 * ($offered - $received) / $offered, 3)")"
}

if [ "${ETSY:-0}" = 1 ]; then
    npm install --prefix "$tmp/etsy" --no-audit --no-fund --silent statsd@0.9.0 >/dev/null 2>&1 ||
        echo "bench: npm install statsd failed; skipping Etsy statsd" >&2
fi

header="| per datagram | offered (metrics/s) | floor: received, CPU/metric | rstatsd default: received, CPU/metric | ratio | loss | receivers' CPU split"
sep="|---|---|---|---|---|---|---"
if [ -n "$TUNED" ]; then
    header+=" | rstatsd \`$TUNED\`: CPU/metric | ratio | loss"
    sep+="|---|---|---"
fi
if [ -f "$tmp/etsy/node_modules/statsd/stats.js" ]; then
    header+=" | Etsy statsd: CPU/metric | ratio | loss"
    sep+="|---|---|---"
fi
rows=()
for cell in $SCENARIOS; do
    per=${cell%%:*}
    rate=${cell#*:}
    read -r f_ns f_recv f_sent < <(floor "$per" "$rate")
    read -r d_ns d_recv d_sent d_loss d_split < <(daemon "$per" "$rate")
    label=$rate
    [ "$rate" = 0 ] && label="sender max ($(calc "round($d_sent / $SECS)"))"
    row="| $per | $label | $f_recv of $f_sent, $f_ns ns | $d_recv of $d_sent, $d_ns ns | $(calc "round($d_ns / $f_ns, 2)")× | $d_loss % | $d_split"
    if [ -n "$TUNED" ]; then
        # shellcheck disable=SC2086
        read -r t_ns _ _ t_loss _ < <(daemon "$per" "$rate" $TUNED)
        row+=" | $t_ns ns | $(calc "round($t_ns / $f_ns, 2)")× | $t_loss %"
    fi
    if [ -f "$tmp/etsy/node_modules/statsd/stats.js" ]; then
        read -r e_ns _ _ e_loss < <(etsy "$per" "$rate")
        row+=" | $e_ns ns | $(calc "round($e_ns / $f_ns, 2)")× | $e_loss %"
    fi
    echo "$row" >&2
    rows+=("$row")
done
echo "$header |"
echo "$sep|"
for row in "${rows[@]}"; do echo "$row |"; done
