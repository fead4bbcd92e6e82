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
# The development payment provider (docs/orders.md), unless one is configured.
fake_port=${EMPORIUM_FAKE_PROVIDER_PORT:-9101}
if [ -z "${EMPORIUM_PAYMENT_PRIMARY:-}" ]; then
  build/emporium fake-provider --listen 127.0.0.1:$fake_port --name dev &
  fake=$!
  export EMPORIUM_PAYMENT_PRIMARY=http://127.0.0.1:$fake_port
fi
url="http://$EMPORIUM_HTTP"
ops=$(build/emporium token --sub ops-1 --role ops --ttl 86400)
cust=$(build/emporium token --sub alice --role customer --ttl 86400)
cat <<TXT
emporium: $url   (PostgreSQL: $EMPORIUM_PG, payments: $EMPORIUM_PAYMENT_PRIMARY)
ops token:      $ops
customer token: $cust
Try:
  curl -s -X PUT $url/v1/warehouses/w1/stock/S1 -H "Authorization: Bearer $ops" -H 'Content-Type: application/json' -d '{"on_hand":120,"seq":1,"low_stock_threshold":10}'
  curl -s -X POST $url/v1/reservations -H "Authorization: Bearer $cust" -H 'Content-Type: application/json' -d '{"sku":"S1","quantity":2}'
  curl -s $url/v1/stock/S1
Shop (docs/api.md): PUT /v1/products/S1, POST /v1/carts, PUT /v1/carts/{id}/items/S1,
  POST /v1/carts/{id}/checkout {"payment":{"method":"card","token":"tok_ok"},"shipping":{"country":"DE"}}
Ctrl-C stops the node and PostgreSQL.
TXT
stop_all() {
  [ -n "${node:-}" ] && kill -TERM "$node" 2>/dev/null && wait "$node" 2>/dev/null || true
  [ -n "${fake:-}" ] && kill -TERM "$fake" 2>/dev/null && wait "$fake" 2>/dev/null || true
  scripts/pg.sh stop
}
trap stop_all EXIT
trap 'exit 0' INT TERM
build/emporium serve &
node=$!
wait "$node"
