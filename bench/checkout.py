"""Checkouts end to end: N carts (prepared first, not timed) check out over C
keep-alive connections against a node whose provider answers at once. Prints
checkouts/s until the last order is paid, the 202 latency the client saw, and
each order's saga latency (order_placed -> order_paid, from its events in
PostgreSQL). Usage: checkout.py PORT PG_URL OPS_TOKEN CUSTOMER_TOKEN|@FILE [N] [C]
(@FILE: customer tokens, one per line, cart i checked out by token i mod count)."""
import http.client
import json
import subprocess
import sys
import threading
import time

port, pg, ops, cust = sys.argv[1:5]
customers = open(cust[1:]).read().split() if cust.startswith("@") else [cust]
n = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
conns = int(sys.argv[6]) if len(sys.argv) > 6 else 32


def psql(sql):
    return subprocess.run(["psql", pg, "-tAc", sql], check=True, capture_output=True,
                          text=True).stdout.strip()


def call(c, method, path, tok, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"null")


def in_parallel(fn, items):
    out = [None] * len(items)

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
        for i in range(k, len(items), conns):
            out[i] = fn(c, items[i])
        c.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
assert call(c, "PUT", "/v1/products/CK", ops, {"name": "bench", "price_minor": 999, "currency": "EUR"})[0] in (200, 201)
assert call(c, "PUT", "/v1/warehouses/w1/stock/CK", ops, {"on_hand": 10**12, "seq": int(time.time())})[0] == 200


def new_cart(c, i):
    tok = customers[i % len(customers)]
    st, body = call(c, "POST", "/v1/carts", tok)
    assert st == 201, body
    st, body = call(c, "PUT", "/v1/carts/%s/items/CK" % body["cart_id"], tok, {"quantity": 1})
    assert st == 200, body
    return body["cart_id"], tok


carts = in_parallel(new_cart, list(range(n)))
checkout_body = {"payment": {"method": "card", "token": "tok_bench"}, "shipping": {"country": "DE"}}


def checkout(c, cart_and_token):
    cart, tok = cart_and_token
    t0 = time.perf_counter()
    st, body = call(c, "POST", "/v1/carts/%s/checkout" % cart, tok, checkout_body)
    return st, body.get("order_id"), (time.perf_counter() - t0) * 1000


start = time.time()
results = in_parallel(checkout, carts)
accepted = time.time()
ids = [r[1] for r in results if r[0] == 202]
id_list = ",".join("'%s'" % i for i in ids)
while True:
    done = int(psql("SELECT count(*) FROM entity_state WHERE aggregate_type='order' "
                    "AND status IN ('paid','failed','cancelled') AND aggregate_id IN (%s)" % id_list))
    if done == len(ids) or time.time() - start > 300:
        break
    time.sleep(0.05)
last = float(psql("SELECT extract(epoch FROM max(event_time)) FROM events WHERE aggregate_type='order' "
                  "AND event_type='order_paid' AND aggregate_id IN (%s)" % id_list))
paid = int(psql("SELECT count(*) FROM events WHERE aggregate_type='order' AND event_type='order_paid' "
                "AND aggregate_id IN (%s)" % id_list))
saga = sorted(float(x) for x in psql(
    "SELECT extract(epoch FROM p.event_time - o.event_time) * 1000 FROM events o JOIN events p "
    "ON p.aggregate_type = 'order' AND p.aggregate_id = o.aggregate_id AND p.event_type = 'order_paid' "
    "WHERE o.aggregate_type = 'order' AND o.event_type = 'order_placed' AND o.aggregate_id IN (%s)"
    % id_list).split())
lat = sorted(r[2] for r in results)
pct = lambda xs, p: xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")
rate = paid / max(1e-9, last - start)
print("checkouts=%d accepted=%d paid=%d connections=%d" % (n, len(ids), paid, conns))
print("checkout_rps=%.0f accept_p50_ms=%.2f accept_p99_ms=%.2f saga_p50_ms=%.2f saga_p99_ms=%.2f"
      % (rate, pct(lat, 0.5), pct(lat, 0.99), pct(saga, 0.5), pct(saga, 0.99)))
