#!/usr/bin/env bash
# The cluster part of `make bench` (run by bench/run.sh, or alone with a PostgreSQL URL):
#   hot-SKU reservations through the owner's gateway vs a non-owner's (owner, non-owner,
#     owner again: the two owner runs bracket the noise), p50/p99 and the throughput ratio;
#   the storefront feed's broadcast: during the first owner run the other node serves
#     nothing and only receives the owner's live changes; its CPU then vs while idle, per
#     change received;
#   rebalance time after kill -9 of the owner (until another node owns the shard);
#   drain time of a node hosting 100 000 SKUs (200 000 actors: SKU + pair), SIGTERM to exit.
# Prints `cluster_*` lines for run.sh's table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SERVER=${1:?postgresql:// URL of the bench server (any database)}
DUR=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
ENTITIES=${BENCH_DRAIN_ENTITIES:-100000}
db="bench_cluster_$$"
psql "$SERVER" -qc "CREATE DATABASE $db"
PG="${SERVER%/*}/$db"
export EMPORIUM_JWT_SECRET=${EMPORIUM_JWT_SECRET:-bench-secret}
declare -A pids
start() { # id http_port cluster_port [seed_port]
  EMPORIUM_PG=$PG EMPORIUM_HTTP=127.0.0.1:$2 EMPORIUM_CLUSTER=127.0.0.1:$3 EMPORIUM_NODE_ID=$1 \
    EMPORIUM_SEEDS=${4:+127.0.0.1:$4} EMPORIUM_IO_THREADS=1 EMPORIUM_LOG_FORMAT=text EMPORIUM_RATE_LIMIT_PUBLIC=0 \
    SPDLOG_LEVEL=warn build/emporium serve >/dev/null &
  pids[$1]=$!
}
ready() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return; sleep 0.05; done; }
customers=$(mktemp /tmp/emporium-bench-customers.XXXXXX)
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -f "$customers"; }
trap cleanup EXIT
OPS=$(build/emporium token --sub bench-ops --role ops)
# many customers, as in run.sh: no one's token bucket runs dry
build/emporium token --sub bench-customer --role customer --count "${BENCH_CUSTOMERS:-10000}" >"$customers"
owner() { curl -sf -H "Authorization: Bearer $OPS" "http://127.0.0.1:$1/v1/cluster/owner?sku=$2" |
  python3 -c "import json,sys; print(json.load(sys.stdin)['node'] or '')"; }
field() { sed -n "s/.*$1=\([-0-9.]*\).*/\1/p"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system ticks
feed_in() { curl -sf "http://127.0.0.1:$1/metrics" | awk '/^emporium_feed_relayed_total\{direction="in"\}/ {print $2}'; }

start n1 18191 17191; sleep 0.3
start n2 18192 17192 17191
ready 18191; ready 18192
sku=$(for i in $(seq 200); do [ "$(owner 18192 CL$i)" = n1 ] && echo CL$i && break; done)
curl -sf -X PUT "http://127.0.0.1:18191/v1/warehouses/w1/stock/$sku" -H "Authorization: Bearer $OPS" \
  -d '{"on_hand":1000000000000,"seq":1}' >/dev/null
reserve() {
  build/bench/loadgen --port "$1" --connections "$CONNS" --duration "$DUR" --method POST \
    --path /v1/reservations --tokens "$customers" \
    --body "{\"sku\":\"$sku\",\"quantity\":1,\"warehouse\":\"w1\"}"
}
reserve 18191 --duration 2 >/dev/null # warm-up
c0=$(cpu "${pids[n2]}"); sleep "$DUR"; c1=$(cpu "${pids[n2]}") # n2 idle
echo "== hot-SKU reservations through the owner (n1), then a non-owner (n2), then the owner"
f0=$(feed_in 18192)
own1=$(reserve 18191); echo "owner:     $own1"
c2=$(cpu "${pids[n2]}"); f1=$(feed_in 18192)
feed=$(python3 -c "
idle, busy, n, hz = ($c1 - $c0), ($c2 - $c1), ($f1 - $f0), $(getconf CLK_TCK)
print('peer_idle_cpu_pct=%.1f peer_feed_cpu_pct=%.1f changes_per_s=%.0f us_per_change=%.1f' % (
    100.0 * idle / hz / $DUR, 100.0 * busy / hz / $DUR, n / $DUR,
    1e6 * max(0, busy - idle) / hz / max(n, 1)))")
echo "feed to the idle peer: $feed"
far=$(reserve 18192); echo "non-owner: $far"
own2=$(reserve 18191); echo "owner:     $own2"

echo "== rebalance after kill -9 of the owner"
start n3 18193 17193 17191; ready 18193
sleep 2 # n3's share has moved to it; the owner of a key may have changed with it
sku=$(for i in $(seq 200); do [ "$(owner 18192 CL$i)" = n1 ] && echo CL$i && break; done)
kill -9 "${pids[n1]}"; t0=$(date +%s.%N); unset "pids[n1]"
until o=$(owner 18192 "$sku") && [ -n "$o" ] && [ "$o" != n1 ]; do sleep 0.01; done
t1=$(date +%s.%N)
rebalance=$(python3 -c "print('%.2f' % ($t1 - $t0))")
echo "shard of $sku owned by $o after $rebalance s"

echo "== drain of a node hosting $ENTITIES SKUs"
kill -TERM "${pids[n3]}"; wait "${pids[n3]}" || true; unset "pids[n3]" # n2 owns everything
build/tests/ws_tool push --port 18192 --wh w1 --token "$OPS" --items "$ENTITIES" --batch 500 \
  --skus "$ENTITIES" --prefix D >/dev/null
actors=$(curl -sf http://127.0.0.1:18192/metrics | awk '/^emporium_actors\{/ {s += $2} END {print s}')
start n3 18193 17193 17192; ready 18193
t0=$(date +%s.%N)
kill -TERM "${pids[n2]}"; wait "${pids[n2]}"; code=$?
t1=$(date +%s.%N); unset "pids[n2]"
drain=$(python3 -c "print('%.2f' % ($t1 - $t0))")
echo "n2 with $actors live actors drained and exited $code after $drain s"

echo "cluster_feed $feed"
python3 - "$own1" "$far" "$own2" "$rebalance" "$drain" "$actors" <<'PY'
import re, sys
def f(line, k):
    return float(re.search(k + r"=([0-9.]+)", line).group(1))
own1, far, own2 = sys.argv[1:4]
own_rps = (f(own1, "rps") + f(own2, "rps")) / 2
print("cluster_owner rps=%.0f p50_ms=%.2f p99_ms=%.2f" % (own_rps, f(own1, "p50_ms"), f(own1, "p99_ms")))
print("cluster_far rps=%.0f p50_ms=%.2f p99_ms=%.2f ratio=%.2f added_p50_ms=%.2f added_p99_ms=%.2f" % (
    f(far, "rps"), f(far, "p50_ms"), f(far, "p99_ms"), f(far, "rps") / own_rps,
    f(far, "p50_ms") - (f(own1, "p50_ms") + f(own2, "p50_ms")) / 2,
    f(far, "p99_ms") - (f(own1, "p99_ms") + f(own2, "p99_ms")) / 2))
print("cluster_rebalance seconds=%s" % sys.argv[4])
print("cluster_drain seconds=%s actors=%s" % (sys.argv[5], sys.argv[6]))
PY
