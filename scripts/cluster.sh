#!/usr/bin/env bash
# `make cluster`: three nodes on this machine sharing the local PostgreSQL of `make run`:
# HTTP on 127.0.0.1:8081..8083, cluster (CAF middleman, loopback) on 127.0.0.1:7071..7073,
# each with its own embedded Kafka broker. Ctrl-C drains all three (SIGTERM) and stops.
# CLUSTER_NODES=N for another count.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/pg.sh start
export EMPORIUM_PG=${EMPORIUM_PG:-$(scripts/pg.sh url)}
export EMPORIUM_JWT_SECRET=${EMPORIUM_JWT_SECRET:-dev-secret-change-me}
export EMPORIUM_KAFKA=${EMPORIUM_KAFKA:-embedded}
export EMPORIUM_LOG_FORMAT=${EMPORIUM_LOG_FORMAT:-text}
n=${CLUSTER_NODES:-3}
pids=()
stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true # each drains: hands its shards over, exits 0
  wait "${pids[@]}" 2>/dev/null || true
  scripts/pg.sh stop
}
trap stop EXIT INT TERM
for i in $(seq 1 "$n"); do
  seeds=""
  [ "$i" -gt 1 ] && seeds=127.0.0.1:7071
  EMPORIUM_HTTP=127.0.0.1:808$i EMPORIUM_CLUSTER=127.0.0.1:707$i EMPORIUM_NODE_ID=node-$i \
    EMPORIUM_SEEDS=$seeds build/emporium serve > >(sed "s/^/[node-$i] /") 2>&1 &
  pids+=($!)
  sleep 0.3
done
for i in $(seq 1 "$n"); do
  for _ in $(seq 100); do curl -sf http://127.0.0.1:808$i/readyz >/dev/null && break; sleep 0.1; done
done
ops=$(build/emporium token --sub ops-1 --role ops --ttl 86400)
cat <<TXT
emporium cluster of $n: http://127.0.0.1:8081 .. http://127.0.0.1:808$n  (PostgreSQL: $EMPORIUM_PG)
ops token: $ops
Try:
  curl -s http://127.0.0.1:8081/v1/cluster -H "Authorization: Bearer $ops"
  curl -s 'http://127.0.0.1:8082/v1/cluster/owner?sku=S1' -H "Authorization: Bearer $ops"
  curl -s -X POST http://127.0.0.1:8081/v1/cluster/nodes/node-2/drain -H "Authorization: Bearer $ops"
Ctrl-C drains and stops every node.
TXT
wait
