#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. One run, one machine, one load generator
# (bench/loadgen); quote the ratios, the absolute numbers are noisy.
#   hot-SKU reservations/s through the gateway  vs  (a) pgbench row-lock UPDATE,
#     at 64 connections and at flash-sale concurrency (256), pgbench with as many clients
#   spread: reservations on random pairs of 10 000 vs pgbench's UPDATE of a random row
#   cached pair reads/s through the gateway      vs  (b) a bare Beast hello server
#   read p50/p99 at 70% of the measured read maximum
#   checkouts/s end to end; stock change -> 1 000 WebSocket subscribers (p50/p99);
#   warehouse push items/s acked durable; outbox relay events/s to the embedded broker
#   cluster (bench/cluster.sh): reservations through a non-owner vs the owner, rebalance
#     after kill -9, drain of a node hosting 100 000 SKUs
# The public (per-IP) rate limit is off: every load comes from one address. The
# customer limit stays on (10 000 tokens, each far under its rate).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cmake --build build -j2 --target emporium loadgen hello_server ws_tool analytics_model_bench >/dev/null
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
FLASH=${BENCH_FLASH_CONNECTIONS:-256} # a flash sale: many more buyers at once
SPREAD=${BENCH_SPREAD_PAIRS:-10000}    # an ordinary day: traffic over many pairs
BUYERS=${BENCH_BUYERS:-50000}          # a flash sale of distinct buyers, each asking once,
BUYER_CONNS=${BENCH_BUYER_CONNECTIONS:-2000} # over this many connections at once,
UNITS=${BENCH_FLASH_UNITS:-1000}       # for this many units
ulimit -n $((BUYER_CONNS + 4096)) 2>/dev/null || true # the node and the load generator each hold every connection
port=${BENCH_PG_PORT:-55441}
data=$(mktemp -d /tmp/emporium-bench-pg.XXXXXX)
node_pid=""; hello_pid=""; fake_pid=""
cleanup() {
  [ -n "$node_pid" ] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  [ -n "$hello_pid" ] && kill "$hello_pid" 2>/dev/null || true
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null || true
  "$root/scripts/pg.sh" stop "$data/pg" "$port" || true
  rm -rf "$data"
}
trap cleanup EXIT
EMPORIUM_PG_MAX_CONNECTIONS=$((FLASH + 50)) scripts/pg.sh start "$data/pg" "$port"
PG="postgresql://postgres@127.0.0.1:$port/emporium"
export EMPORIUM_JWT_SECRET=bench-secret
HTTP_PORT=18090
IO_THREADS=${BENCH_IO_THREADS:-2}
build/emporium fake-provider --listen 127.0.0.1:18098 --name bench >/dev/null &
fake_pid=$!
EMPORIUM_PG=$PG EMPORIUM_HTTP=127.0.0.1:$HTTP_PORT EMPORIUM_IO_THREADS=$IO_THREADS \
  EMPORIUM_PAYMENT_PRIMARY=http://127.0.0.1:18098 \
  EMPORIUM_LOG_FORMAT=text EMPORIUM_RATE_LIMIT_PUBLIC=0 SPDLOG_LEVEL=warn \
  build/emporium serve >/dev/null &
node_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:$HTTP_PORT/healthz >/dev/null && break; sleep 0.1; done
OPS=$(build/emporium token --sub bench-ops --role ops)
# Reservations come from many customers, as in a shop: each customer's token
# bucket (20/s by default) stays far from empty, and the limiter's cost is in
# every figure.
build/emporium token --sub bench-customer --role customer --count "${BENCH_CUSTOMERS:-10000}" >"$data/customers"
curl -sf -X PUT http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/HOT \
  -H "Authorization: Bearer $OPS" -d '{"on_hand":1000000000000,"seq":1}' >/dev/null

lg() { build/bench/loadgen --port "$1" --connections "$CONNS" --duration "$DUR" "${@:2}"; } # a later --connections wins
field() { sed -n "s/.*$1=\([-0-9.]*\).*/\1/p"; }
tps() { sed -n 's/tps = \([0-9.]*\).*/\1/p'; }

echo "== cached pair reads through the gateway"
reads=$(lg $HTTP_PORT --path /v1/warehouses/w1/stock/HOT --header "Authorization: Bearer $OPS")
echo "$reads"
echo "== (b) bare Beast hello server, same load, $IO_THREADS I/O threads"
build/bench/hello_server 18099 "$IO_THREADS" & hello_pid=$!
sleep 0.3
hello=$(lg 18099 --path /)
echo "$hello"
# The machine's own tail: the bare server paced at 70 % of its maximum (two
# shared cores; the load generator, the server and the kernel take turns).
hello_rate=$(python3 -c "print(int($(echo "$hello" | field rps) * 0.7))")
echo "== (b) the hello server paced at 70% of its maximum ($hello_rate/s)"
hello_paced=$(lg 18099 --path / --rate "$hello_rate")
echo "$hello_paced"
kill $hello_pid; hello_pid=""
read_max=$(echo "$reads" | field rps)
rate=$(python3 -c "print(int($read_max * 0.7))")
echo "== reads paced at 70% of the read maximum ($rate/s)"
paced=$(lg $HTTP_PORT --path /v1/warehouses/w1/stock/HOT --header "Authorization: Bearer $OPS" --rate "$rate")
echo "$paced"

# Writes last: their aftermath (autovacuum, checkpoints, dirty pages being
# flushed) would otherwise share the two cores with the read measurements.
echo "== warm-up"
lg $HTTP_PORT --method POST --path /v1/reservations --tokens "$data/customers" \
  --body '{"sku":"HOT","quantity":1,"warehouse":"w1"}' --duration 2 >/dev/null
reserve() {
  lg $HTTP_PORT --method POST --path /v1/reservations --tokens "$data/customers" \
    --body '{"sku":"HOT","quantity":1,"warehouse":"w1"}' --connections "$1"
}
psql "$PG" -qc "CREATE TABLE bench_stock (sku text, warehouse text, on_hand bigint, reserved bigint,
  PRIMARY KEY (sku, warehouse)); INSERT INTO bench_stock VALUES ('HOT', 'w1', 1000000000000, 0);"
cat > "$data/reserve.sql" <<'SQL'
\set q 1
UPDATE bench_stock SET reserved = reserved + :q
 WHERE sku = 'HOT' AND warehouse = 'w1' AND on_hand - reserved >= :q;
SQL
pgb() { pgbench -n -c "$1" -j 2 -T "$DUR" -f "$data/reserve.sql" "$PG" 2>&1 | grep -E "^tps" | head -1; }
echo "== hot-SKU reservations through the gateway ($CONNS connections, ${DUR}s)"
res=$(reserve "$CONNS")
echo "$res"
echo "== (a) pgbench: one row-lock UPDATE per reservation, same PostgreSQL, $CONNS clients"
pg=$(pgb "$CONNS")
echo "$pg"
echo "== flash sale: hot-SKU reservations, $FLASH connections"
flash=$(reserve "$FLASH")
echo "$flash"
echo "== (a) pgbench, $FLASH clients"
pg_flash=$(pgb "$FLASH")
echo "$pg_flash"

echo "== flash sale: $BUYERS buyers (a token each) ask once over $BUYER_CONNS connections for $UNITS units"
build/emporium token --sub buyer --role customer --count "$BUYERS" >"$data/buyers"
curl -sf -X PUT http://127.0.0.1:$HTTP_PORT/v1/warehouses/w1/stock/FLASH \
  -H "Authorization: Bearer $OPS" -d "{\"on_hand\":$UNITS,\"seq\":1}" >/dev/null
buyers=$(build/bench/loadgen --port $HTTP_PORT --method POST --path /v1/reservations \
  --body '{"sku":"FLASH","quantity":1,"warehouse":"w1"}' --tokens "$data/buyers" --once 1 \
  --connections "$BUYER_CONNS" --duration 120)
echo "$buyers"
# What PostgreSQL holds afterwards: live holds, their distinct owners, the level's reserved.
held=$(psql "$PG" -Atc "SELECT count(*), count(DISTINCT owner), coalesce(sum(quantity), 0),
  (SELECT reserved FROM stock_levels WHERE sku = 'FLASH' AND warehouse = 'w1')
  FROM stock_holds WHERE sku = 'FLASH' AND warehouse = 'w1' AND status = 'held'" | tr '|' ' ')
echo "held_rows owners units reserved: $held"

echo "== spread: reservations on random pairs of $SPREAD, $CONNS connections"
build/tests/ws_tool push --port $HTTP_PORT --wh w1 --token "$OPS" --items $((2 * SPREAD)) \
  --batch 500 --skus "$SPREAD" --prefix SP >/dev/null # on_hand >= SPREAD on every pair
lg $HTTP_PORT --method POST --path /v1/reservations --tokens "$data/customers" \
  --body '{"sku":"SP{n}","quantity":1,"warehouse":"w1"}' --spread "$SPREAD" --duration 2 >/dev/null
spread=$(lg $HTTP_PORT --method POST --path /v1/reservations --tokens "$data/customers" \
  --body '{"sku":"SP{n}","quantity":1,"warehouse":"w1"}' --spread "$SPREAD")
echo "$spread"
echo "== (a) pgbench: one row-lock UPDATE of a random row of $SPREAD, $CONNS clients"
psql "$PG" -qc "INSERT INTO bench_stock SELECT 'SP' || i, 'w1', 1000000000, 0 FROM generate_series(0, $SPREAD - 1) i"
cat > "$data/spread.sql" <<SQL
\\set i random(0, $SPREAD - 1)
UPDATE bench_stock SET reserved = reserved + 1
 WHERE sku = 'SP' || :i AND warehouse = 'w1' AND on_hand - reserved >= 1;
SQL
pg_spread=$(pgbench -n -c "$CONNS" -j 2 -T "$DUR" -f "$data/spread.sql" "$PG" 2>&1 | grep -E "^tps" | head -1)
echo "$pg_spread"

echo "== checkouts end to end (fake provider, zero latency)"
chk=$(python3 bench/checkout.py $HTTP_PORT "$PG" "$OPS" "@$data/customers" "${BENCH_CHECKOUTS:-2000}" 32)
echo "$chk"

echo "== stock change -> 1000 WebSocket subscribers (100 changes, each waited for)"
fan=$(build/tests/ws_tool fanout --port $HTTP_PORT --sku FANOUT --wh w1 --token "$OPS" \
  --subscribers 1000 --changes 100)
echo "$fan"
echo "== warehouse push over WebSocket: 20000 items, batches of 500, 200 SKUs"
push=$(build/tests/ws_tool push --port $HTTP_PORT --wh w1 --token "$OPS" --items 20000 \
  --batch 500 --skus 200)
echo "$push"
echo "== outbox relay: 200000 committed events drained to the embedded broker"
relay=$(python3 bench/relay.py $HTTP_PORT "$PG" 200000)
echo "$relay"
jf() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

kill -TERM "$node_pid"; wait "$node_pid" || true; node_pid="" # the cluster runs alone
echo "== analytics model: 2 000 000 events over 100 000 SKUs in one hour, one thread"
am=$(build/bench/analytics_model_bench 100000 2000000)
echo "$am"
echo "== cluster (bench/cluster.sh)"
cl=$(bench/cluster.sh "$PG")
echo "$cl"
cl_line() { echo "$cl" | grep "^cluster_$1 "; }

res_rps=$(echo "$res" | field rps)
pg_tps=$(echo "$pg" | tps)
hello_rps=$(echo "$hello" | field rps)
flash_rps=$(echo "$flash" | field rps)
pg_flash_tps=$(echo "$pg_flash" | tps)
python3 - "$res_rps" "$pg_tps" "$read_max" "$hello_rps" "$(echo "$paced" | field p50_ms)" \
  "$(echo "$paced" | field p99_ms)" "$(echo "$res" | field p50_ms)" "$(echo "$res" | field p99_ms)" \
  "$(echo "$chk" | field checkout_rps)" "$(echo "$chk" | field saga_p50_ms)" "$(echo "$chk" | field saga_p99_ms)" \
  "$(echo "$chk" | field accept_p50_ms)" "$(echo "$chk" | field accept_p99_ms)" \
  "$(jf "$fan" p50_ms)" "$(jf "$fan" p99_ms)" "$(jf "$push" items_per_s)" "$(echo "$relay" | field relay_eps)" \
  "$flash_rps" "$pg_flash_tps" "$(echo "$flash" | field p50_ms)" "$(echo "$flash" | field p99_ms)" "$CONNS" "$FLASH" \
  "$(cl_line owner | field rps)" "$(cl_line far | field rps)" "$(cl_line far | field ratio)" \
  "$(cl_line far | field added_p50_ms)" "$(cl_line far | field added_p99_ms)" \
  "$(cl_line rebalance | field seconds)" "$(cl_line drain | field seconds)" "$(cl_line drain | field actors)" \
  "$(cl_line feed | field changes_per_s)" "$(cl_line feed | field peer_idle_cpu_pct)" \
  "$(cl_line feed | field peer_feed_cpu_pct)" "$(cl_line feed | field us_per_change)" \
  "$(echo "$spread" | field rps)" "$(echo "$pg_spread" | tps)" "$(echo "$spread" | field p50_ms)" \
  "$(echo "$spread" | field p99_ms)" "$SPREAD" \
  "$(echo "$buyers" | field p50_ms)" "$(echo "$buyers" | field p99_ms)" "$(echo "$buyers" | field rps)" \
  "$(echo "$buyers" | field connected)" "$BUYERS" "$UNITS" \
  "$(echo "$buyers" | sed -n 's/.*statuses=\([0-9:,]*\).*/\1/p')" "$held" \
  "$(echo "$hello_paced" | field p50_ms)" "$(echo "$hello_paced" | field p99_ms)" <<'PY'
import sys
(res, pg, reads, hello, p50, p99, rp50, rp99, chk, s50, s99, a50, a99, f50, f99, push, relay,
 flash, pgf, fp50, fp99, conns, fconns, own, far, ratio, add50, add99, rebalance, drain,
 actors, feed_rate, peer_idle, peer_feed, feed_us, spread, pgs, sp50, sp99,
 pairs, bp50, bp99, brps, bconns, buyers, units) = map(float, sys.argv[1:47])
statuses = {int(k): int(v) for k, v in (kv.split(":") for kv in sys.argv[47].split(",") if kv)}
held_rows, owners, held_units, reserved = map(int, sys.argv[48].split())
hp50, hp99 = map(float, sys.argv[49:51])
others = sum(n for s, n in statuses.items() if s not in (201, 409))
print()
print("| measure | value | baseline | ratio | target |")
print("|---|---|---|---|---|")
print("| hot-SKU reservations/s, %d connections (p50 %.2f ms, p99 %.2f ms) | %.0f | pgbench %.0f tps | %.1fx | >= 20x |" % (conns, rp50, rp99, res, pg, res / pg))
print("| flash sale: hot-SKU reservations/s, %d connections (p50 %.2f ms, p99 %.2f ms) | %.0f | pgbench %.0f tps | %.1fx | >= 20x |" % (fconns, fp50, fp99, flash, pgf, flash / pgf))
print("| flash sale: %.0f buyers (a token each) ask once, %.0f connections, %.0f units (p50 %.2f ms, p99 %.2f ms, %.0f answers/s) | %d granted (201), %d sold out (409), %d other | PostgreSQL: %d holds of %d owners, reserved %d | | exactly %.0f |" % (buyers, bconns, units, bp50, bp99, brps, statuses.get(201, 0), statuses.get(409, 0), others, held_rows, owners, reserved, units))
print("| spread: reservations/s on random pairs of %.0f, %d connections (p50 %.2f ms, p99 %.2f ms) | %.0f | pgbench %.0f tps | %.1fx | >= 3x |" % (pairs, conns, sp50, sp99, spread, pgs, spread / pgs))
print("| cached pair reads/s | %.0f | Beast hello %.0f req/s | %.0f%% | >= 50%% |" % (reads, hello, 100 * reads / hello))
print("| read latency at 70%% of max | p50 %.2f ms, p99 %.2f ms | Beast hello at 70%% of its max: p50 %.2f ms, p99 %.2f ms | | p99 <= 5 ms |" % (p50, p99, hp50, hp99))
print("| checkouts/s end to end (202 p50 %.2f / p99 %.2f ms) | %.0f | saga p50 %.2f ms | p99 %.2f ms | |" % (a50, a99, chk, s50, s99))
print("| stock change -> 1000 WebSocket subscribers | p50 %.2f ms | p99 %.2f ms | | |" % (f50, f99))
print("| warehouse push items/s, acked durable | %.0f | | | |" % push)
print("| outbox relay events/s to the embedded broker | %.0f | | | |" % relay)
print("| cluster: hot-SKU reservations/s through a non-owner (%+.2f ms p50, %+.2f ms p99) | %.0f | owner %.0f | %.2fx | |" % (add50, add99, far, own, ratio))
print("| cluster: rebalance after kill -9 of the owner | %.2f s | | | <= 2 s |" % rebalance)
print("| cluster: drain of a node with %.0f live actors, SIGTERM to exit | %.2f s | | | |" % (actors, drain))
print("| cluster: storefront feed to a peer serving nothing (%.0f changes/s) | CPU %.1f %% | idle %.1f %% | %.1f us/change | |" % (feed_rate, peer_feed, peer_idle, feed_us))
PY
echo "$am" | python3 -c 'import re, sys
d = dict(re.findall(r"(\w+)=(\S+)", sys.stdin.read()))
print("| analytics model, one thread, %s SKUs: events/s ingested (trending p50 %s / p99 %s ms, recommendations p99 %s ms) | %.0f | | | RSS %.0f B per SKU |" % (d["skus"], d["trending_p50_ms"], d["trending_p99_ms"], d["recommendations_p99_ms"], float(d["ingest_eps"]), float(d["rss_per_sku_bytes"])))'
