#!/usr/bin/env bash
# `make run`: a local PostgreSQL, migrations, one node on 127.0.0.1:8080 with
# the embedded Kafka broker. Ctrl-C stops the node and that PostgreSQL.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/pg.sh start
export EMPORIUM_PG=${EMPORIUM_PG:-$(scripts/pg.sh url)}
export EMPORIUM_HTTP=${EMPORIUM_HTTP:-127.0.0.1:8080}
export EMPORIUM_KAFKA=${EMPORIUM_KAFKA:-embedded}
export EMPORIUM_JWT_SECRET=${EMPORIUM_JWT_SECRET:-dev-secret-change-me}
export EMPORIUM_NODE_ID=${EMPORIUM_NODE_ID:-node-1}
export EMPORIUM_LOG_FORMAT=${EMPORIUM_LOG_FORMAT:-text}
url="http://$EMPORIUM_HTTP"
ops=$(build/emporium token --sub ops-1 --role ops --ttl 86400)
cust=$(build/emporium token --sub alice --role customer --ttl 86400)
cat <<TXT
emporium: $url   (PostgreSQL: $EMPORIUM_PG)
ops token:      $ops
customer token: $cust
Try:
  curl -s -X PUT $url/v1/warehouses/w1/stock/S1 -H "Authorization: Bearer $ops" -H 'Content-Type: application/json' -d '{"on_hand":120,"seq":1,"low_stock_threshold":10}'
  curl -s -X POST $url/v1/reservations -H "Authorization: Bearer $cust" -H 'Content-Type: application/json' -d '{"sku":"S1","quantity":2}'
  curl -s $url/v1/stock/S1
Ctrl-C stops the node and PostgreSQL.
TXT
stop_all() {
  [ -n "${node:-}" ] && kill -TERM "$node" 2>/dev/null && wait "$node" 2>/dev/null || true
  scripts/pg.sh stop
}
trap stop_all EXIT
trap 'exit 0' INT TERM
build/emporium serve &
node=$!
wait "$node"
