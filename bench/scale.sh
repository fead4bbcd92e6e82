#!/usr/bin/env bash
# `make bench-scale`: figures, not pass/fail (issue 13's scale measures).
#   - PAIRS new SKUs with one pair each, pushed over the warehouse WebSocket: time to load,
#     the node's RSS before and after, so RSS per live pair (SKU actor + pair actor);
#   - one pair with HOLDS live holds (reservations of one unit): the node restarted, then the
#     time of the first read of that pair, which recovers it (level + every live hold);
#   - idle pairs: a node restarted with EMPORIUM_PASSIVATE_AFTER=IDLE_AFTER, PAIRS more new SKUs
#     loaded and left to passivate (no actor left), then RSS per idle pair (its level in the stock
#     view) and pair reads/s over them (answered from the view: no actor is started).
# Environment: BENCH_SCALE_PAIRS (1000000), BENCH_SCALE_HOLDS (500000),
# BENCH_SCALE_IDLE_AFTER (5 seconds), BENCH_PG_PORT (55444).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake --build build -j2 --target emporium loadgen ws_tool >/dev/null
PAIRS=${BENCH_SCALE_PAIRS:-1000000}
HOLDS=${BENCH_SCALE_HOLDS:-500000}
IDLE_AFTER=${BENCH_SCALE_IDLE_AFTER:-5}
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
start_node() { # [VAR=value ...] for the node
  env "$@" EMPORIUM_PG=$PG EMPORIUM_HTTP=127.0.0.1:$HTTP_PORT EMPORIUM_LOG_FORMAT=text EMPORIUM_RATE_LIMIT_PUBLIC=0 SPDLOG_LEVEL=warn \
    build/emporium serve >/dev/null &
  node_pid=$!
  for _ in $(seq 300); do curl -sf http://127.0.0.1:$HTTP_PORT/readyz >/dev/null && return; sleep 0.1; done
  echo "the node did not become ready" >&2; exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' /proc/"$node_pid"/status; }
now() { date +%s.%N; }
OPS=$(build/emporium token --sub scale-ops --role ops)
# many customers, as in run.sh: no one's token bucket runs dry
build/emporium token --sub scale-customer --role customer --count 10000 >"$data/customers"
start_node
sleep 1
rss0=$(rss_kib)

echo "== load: $PAIRS new SKUs, one pair each, over the warehouse WebSocket"
push=$(build/tests/ws_tool push --port $HTTP_PORT --wh w1 --token "$OPS" --items "$PAIRS" \
  --batch 500 --skus "$PAIRS" --prefix SC)
echo "$push"
sleep 1
rss1=$(rss_kib)
live_actors() { curl -sf http://127.0.0.1:$HTTP_PORT/metrics | awk -v k="$1" '$1 == "emporium_actors{kind=\"" k "\"}" {print $2}'; }
live=$(live_actors stock)
echo "rss_before_kib=$rss0 rss_after_kib=$rss1 live_pairs=${live:-?}"

echo "== a hot pair with $HOLDS live holds"
curl -sf -X PUT http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/SCHOT \
  -H "Authorization: Bearer $OPS" -d '{"on_hand":1000000000000,"seq":1}' >/dev/null
held=0
while [ "$held" -lt "$HOLDS" ]; do
  build/bench/loadgen --port $HTTP_PORT --connections 64 --duration 5 --method POST \
    --path /v1/reservations --tokens "$data/customers" \
    --body '{"sku":"SCHOT","quantity":1,"warehouse":"w1","ttl_s":3600}' >/dev/null
  held=$(psql "$PG" -tAc "SELECT reserved FROM stock_levels WHERE sku = 'SCHOT'")
done
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""
start_node
t0=$(now)
level=$(curl -sf http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/SCHOT -H "Authorization: Bearer $OPS")
t1=$(now)
echo "$level"

echo "== idle pairs: $PAIRS more new SKUs, passivated after ${IDLE_AFTER}s"
kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid=""
start_node EMPORIUM_PASSIVATE_AFTER="$IDLE_AFTER"
# The hot pair's live holds keep it (and its SKU) live: it is resumed for
# their expiry timers once the node holds its shards. Idle means back to that.
for _ in $(seq 100); do [ "$(live_actors stock)" = 1 ] && break; sleep 0.1; done
busy_pairs=$(live_actors stock); busy_skus=$(live_actors sku)
rss2=$(rss_kib)
idle_push=$(build/tests/ws_tool push --port $HTTP_PORT --wh w1 --token "$OPS" --items "$PAIRS" \
  --batch 500 --skus "$PAIRS" --prefix SI)
echo "$idle_push"
for _ in $(seq 600); do
  [ "$(live_actors stock)" = "$busy_pairs" ] && [ "$(live_actors sku)" = "$busy_skus" ] && break
  sleep 0.5
done
sleep 11 # the node gives freed memory back every 10 s (app/node.cpp: the memory trimmer)
rss3=$(rss_kib)
echo "rss_before_kib=$rss2 rss_idle_kib=$rss3 live_pairs=$(live_actors stock) live_skus=$(live_actors sku)"
idle_reads=$(build/bench/loadgen --port $HTTP_PORT --connections 64 --duration 5 \
  --path '/v1/warehouses/w1/stock/SI{n}' --spread "$PAIRS" --header "Authorization: Bearer $OPS")
echo "$idle_reads"
echo "live pairs after the reads: $(live_actors stock) (before: $busy_pairs)"
python3 - "$push" "$rss0" "$rss1" "$PAIRS" "$held" "$t0" "$t1" "$rss2" "$rss3" "$idle_reads" <<'PY'
import json, re, sys
push, rss0, rss1, pairs, held, t0, t1, rss2, rss3, reads = sys.argv[1:]
push = json.loads(push)
per_pair = (int(rss1) - int(rss0)) * 1024 / int(pairs)
per_idle = (int(rss3) - int(rss2)) * 1024 / int(pairs)
ok = re.search(r"statuses=200:(\d+),$", reads.strip())
print("scale pairs=%s load_seconds=%.1f load_pairs_per_s=%.0f rss_per_pair_bytes=%.0f "
      "hot_holds=%s hot_recovery_ms=%.1f rss_per_idle_pair_bytes=%.0f idle_reads_rps=%s "
      "idle_reads_all_200=%s"
      % (pairs, push["seconds"], push["items_per_s"], per_pair, held,
         (float(t1) - float(t0)) * 1000, per_idle,
         re.search(r"rps=(\d+)", reads).group(1), "yes" if ok else "no"))
PY
