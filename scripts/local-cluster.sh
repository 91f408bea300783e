#!/usr/bin/env bash
# Starts a three-node pushgateway-cluster on this machine (loopback only):
# APIs on :9091, :9092, :9093; state under ./data/nodeN. Ctrl-C stops all
# three gracefully.
#
# With a second argument, a directory made by scripts/gen-test-certs.sh, the
# nodes use its credentials: HTTPS and basic auth on the APIs, an encrypted
# gossip and mutual TLS between the nodes (make cluster-secure).
set -euo pipefail
bin=${1:-./pushgateway-cluster}
certs=${2:-}
secure=()
scheme=http
if [ -n "$certs" ]; then
  secure=(--web.config.file="$certs/web-config.yml" --cluster.gossip-key-file="$certs/gossip.key"
    --cluster.tls-config-file="$certs/cluster-tls.yml")
  scheme=https
fi
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
    ${secure[@]+"${secure[@]}"} \
    2>&1 | sed -u "s/^/node$i | /" &
  pids+=($!)
done
echo "three nodes starting: $scheme://127.0.0.1:9091 $scheme://127.0.0.1:9092 $scheme://127.0.0.1:9093 (Ctrl-C stops them)"
if [ -n "$certs" ]; then
  echo "user pusher, password in $certs/web-password; CA $certs/ca.crt"
fi
wait
