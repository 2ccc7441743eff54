#!/usr/bin/env bash
# A local Kafka-compatible broker for experiments: tansu on 127.0.0.1:9092 (in memory),
# with the topic `metrics`. Runs in the foreground; Ctrl-C stops it.
#
#   tools/kafka-dev.sh &
#   cargo run --release -- --kafka-brokers 127.0.0.1:9092
#   kcat -b 127.0.0.1:9092 -t metrics -C -o beginning      # apt-get install kcat
set -euo pipefail
ADDR="${KAFKA_DEV_ADDR:-127.0.0.1:9092}"
TOPIC="${KAFKA_DEV_TOPIC:-metrics}"

if ! tansu --version 2>/dev/null | grep -qx 'tansu 0.6.0'; then
    echo "==> installing tansu 0.6.0 (about 10 minutes the first time)"
    cargo install tansu --version 0.6.0 --locked --features dynostore
fi

tansu broker --listener-url "tcp://$ADDR" --advertised-listener-url "tcp://$ADDR" \
    --storage-engine memory://tansu/ &
broker=$!
# tansu's own SIGTERM handling holds the port for seconds; SIGKILL frees it at once.
trap 'kill -9 $broker 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do
    if tansu topic create --broker "tcp://$ADDR" --partitions 3 "$TOPIC" >/dev/null 2>&1; then
        echo "==> tansu on $ADDR, topic $TOPIC ready"
        break
    fi
    sleep 0.2
done
wait $broker
