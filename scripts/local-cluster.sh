#!/usr/bin/env bash
# Starts a three-node pushgateway-cluster on this machine (loopback only):
# APIs on :9091, :9092, :9093; state under ./data/nodeN. Ctrl-C stops all
# three gracefully.
set -euo pipefail
bin=${1:-./pushgateway-cluster}
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
for i in 1 2 3; do
  "$bin" \
    --web.listen-address=127.0.0.1:909$i \
    --storage.path=data/node$i \
    --cluster.node-name=node$i \
    --cluster.listen-address=127.0.0.1:1909$i \
    --raft.listen-address=127.0.0.1:2909$i \
    --cluster.bootstrap-expect=3 \
    --cluster.peer=127.0.0.1:19091 --cluster.peer=127.0.0.1:19092 --cluster.peer=127.0.0.1:19093 \
    2>&1 | sed -u "s/^/node$i | /" &
  pids+=($!)
done
echo "three nodes starting: http://127.0.0.1:9091 http://127.0.0.1:9092 http://127.0.0.1:9093 (Ctrl-C stops them)"
wait
