#!/usr/bin/env bash
# `make bench-scale`: figures, not pass/fail (issue 13's scale measures).
#   - PAIRS new SKUs with one pair each, pushed over the warehouse WebSocket: time to load,
#     the node's RSS before and after, so RSS per live pair (SKU actor + pair actor);
#   - one pair with HOLDS live holds (reservations of one unit): the node restarted, then the
#     time of the first read of that pair, which recovers it (level + every live hold).
# Environment: BENCH_SCALE_PAIRS (1000000), BENCH_SCALE_HOLDS (500000), BENCH_PG_PORT (55444).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake --build build -j2 --target emporium loadgen ws_tool >/dev/null
PAIRS=${BENCH_SCALE_PAIRS:-1000000}
HOLDS=${BENCH_SCALE_HOLDS:-500000}
port=${BENCH_PG_PORT:-55444}
data=$(mktemp -d /tmp/emporium-scale-pg.XXXXXX)
node_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$data/pg" "$port" || true
  rm -rf "$data"
}
trap cleanup EXIT
scripts/pg.sh start "$data/pg" "$port"
PG="postgresql://postgres@127.0.0.1:$port/emporium"
export EMPORIUM_JWT_SECRET=bench-secret
HTTP_PORT=18092
start_node() {
  EMPORIUM_PG=$PG EMPORIUM_HTTP=127.0.0.1:$HTTP_PORT EMPORIUM_LOG_FORMAT=text SPDLOG_LEVEL=warn \
    build/emporium serve >/dev/null &
  node_pid=$!
  for _ in $(seq 300); do curl -sf http://127.0.0.1:$HTTP_PORT/readyz >/dev/null && return; sleep 0.1; done
  echo "the node did not become ready" >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$node_pid"/status; }
now() { date +%s.%N; }
OPS=$(build/emporium token --sub scale-ops --role ops)
CUST=$(build/emporium token --sub scale-buyer --role customer)
start_node
sleep 1
rss0=$(rss_kib)

echo "== load: $PAIRS new SKUs, one pair each, over the warehouse WebSocket"
push=$(build/tests/ws_tool push --port $HTTP_PORT --wh w1 --token "$OPS" --items "$PAIRS" \
  --batch 500 --skus "$PAIRS" --prefix SC)
echo "$push"
sleep 1
rss1=$(rss_kib)
live=$(curl -sf http://127.0.0.1:$HTTP_PORT/metrics | awk '/^emporium_actors\{kind="stock"\}/ {print $2}')
echo "rss_before_kib=$rss0 rss_after_kib=$rss1 live_pairs=${live:-?}"

echo "== a hot pair with $HOLDS live holds"
curl -sf -X PUT http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/SCHOT \
  -H "Authorization: Bearer $OPS" -d '{"on_hand":1000000000000,"seq":1}' >/dev/null
held=0
while [ "$held" -lt "$HOLDS" ]; do
  build/bench/loadgen --port $HTTP_PORT --connections 64 --duration 5 --method POST \
    --path /v1/reservations --header "Authorization: Bearer $CUST" \
    --body '{"sku":"SCHOT","quantity":1,"warehouse":"w1","ttl_s":3600}' >/dev/null
  held=$(psql "$PG" -tAc "SELECT reserved FROM stock_levels WHERE sku = 'SCHOT'")
done
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""
start_node
t0=$(now)
level=$(curl -sf http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/SCHOT -H "Authorization: Bearer $OPS")
t1=$(now)
echo "$level"
python3 - "$push" "$rss0" "$rss1" "$PAIRS" "$held" "$t0" "$t1" <<'PY'
import json, sys
push, rss0, rss1, pairs, held, t0, t1 = sys.argv[1:]
push = json.loads(push)
per_pair = (int(rss1) - int(rss0)) * 1024 / int(pairs)
print("scale pairs=%s load_seconds=%.1f load_pairs_per_s=%.0f rss_per_pair_bytes=%.0f "
      "hot_holds=%s hot_recovery_ms=%.1f"
      % (pairs, push["seconds"], push["items_per_s"], per_pair, held,
         (float(t1) - float(t0)) * 1000))
PY
