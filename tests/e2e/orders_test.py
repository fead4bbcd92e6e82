"""End to end over HTTP against a real node, real PostgreSQL and the fake
payment provider: checkout, decline, cancel, ship, deliver, return, idempotent
retries, owner checks, bad input, provider failover, a restart mid-wait, and
500 carts checking out one scarce SKU at once."""
import sys
import threading
import time
import unittest

from node import FakeProvider, Node, free_port, fresh_database, psql, token

OPS = token("ops-1", "ops")
ALICE = token("alice", "customer")
BOB = token("bob", "customer")
WH1 = token("wh-bot", "warehouse", ["w1"])
PAY = {"method": "card", "token": "tok_ok"}
SHIP = {"country": "DE", "city": "Berlin"}
FINAL = ("paid", "failed", "cancelled")


class Shop(unittest.TestCase):
    """Helpers of the order tests; a subclass starts the node."""

    @classmethod
    def product(cls, sku, price, on_hand=None, wh="w1"):
        st, body, _ = cls.node.request("PUT", "/v1/products/" + sku,
                                       {"name": sku, "price_minor": price, "currency": "EUR"}, OPS)
        assert st in (200, 201), body
        if on_hand is not None:
            st, body, _ = cls.node.request("PUT", "/v1/warehouses/%s/stock/%s" % (wh, sku),
                                           {"on_hand": on_hand, "seq": int(time.time() * 1000)}, OPS)
            assert st == 200, body

    def req(self, *a, **kw):
        return self.node.request(*a, **kw)

    def assert_error(self, resp, status, code, field=None):
        st, body, _ = resp
        self.assertEqual(st, status, body)
        self.assertEqual(body["error"], code, body)
        if field:
            self.assertEqual(body.get("field"), field, body)
        return body

    def cart(self, lines, tok=ALICE):
        st, body, _ = self.req("POST", "/v1/carts", None, tok)
        self.assertEqual(st, 201, body)
        cid = body["cart_id"]
        for sku, qty in lines:
            st, body, _ = self.req("PUT", "/v1/carts/%s/items/%s" % (cid, sku), {"quantity": qty}, tok)
            self.assertEqual(st, 200, body)
        return cid

    def checkout(self, cid, tok=ALICE, payment=PAY, headers=None):
        return self.req("POST", "/v1/carts/%s/checkout" % cid, {"payment": payment, "shipping": SHIP},
                        tok, headers=headers)

    def settle(self, oid, tok=ALICE, until=FINAL, timeout=20):
        deadline = time.time() + timeout
        while True:
            st, body, hdrs = self.req("GET", "/v1/orders/" + oid, tok=tok)
            if st == 429:  # polling faster than the customer's rate limit
                time.sleep(int(hdrs.getheader("Retry-After")))
                continue
            self.assertEqual(st, 200, body)
            if body["status"] in until or time.time() > deadline:
                return body
            time.sleep(0.02)

    def stock(self, sku, wh="w1"):
        return self.req("GET", "/v1/warehouses/%s/stock/%s" % (wh, sku), tok=OPS)[1]

    def ledger_for(self, oid):
        out = []
        for p in filter(None, (self.primary, self.secondary)):
            out += [a for a in p.ledger()["authorizations"] if a["order_id"] == oid]
        return out

class Orders(Shop):
    @classmethod
    def setUpClass(cls):
        cls.primary = FakeProvider("p1").start()
        cls.secondary = FakeProvider("p2").start()
        cls.dsn = fresh_database()
        cls.node = Node(cls.dsn, EMPORIUM_PAYMENT_PRIMARY=cls.primary.url,
                        EMPORIUM_PAYMENT_SECONDARY=cls.secondary.url,
                        EMPORIUM_PAYMENT_RETRY_MS="300", EMPORIUM_PAYMENT_TIMEOUT_MS="1000",
                        EMPORIUM_DEFAULT_HOLD_TTL="2").start()
        cls.product("P1", 1000)

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        cls.primary.stop()
        cls.secondary.stop()
        assert code == 0, code

    # -- the paths ------------------------------------------------------------------

    def test_checkout_happy_path_ship_deliver_return(self):
        self.product("H1", 1250, on_hand=10)
        cid = self.cart([("H1", 3)])
        st, body, _ = self.checkout(cid)
        self.assertEqual(st, 202, body)
        self.assertEqual(set(body), {"order_id", "status"})
        oid = body["order_id"]
        o = self.settle(oid)
        self.assertEqual(o["status"], "paid", o)
        self.assertEqual((o["total_minor"], o["currency"]), (3750, "EUR"))
        self.assertEqual(o["payment"]["status"], "captured")
        self.assertEqual(o["allocations"], [{"sku": "H1", "warehouse": "w1", "quantity": 3,
                                             "reservation_id": oid + ".1"}])
        for key in ("order_id", "status", "items", "allocations", "payment", "total_minor",
                    "currency", "created_at", "updated_at"):
            self.assertIn(key, o)
        self.assertEqual(self.stock("H1")["committed"], 3)
        st, cart, _ = self.req("GET", "/v1/carts/" + cid, tok=ALICE)
        self.assertEqual((cart["status"], cart["order_id"]), ("checked_out", oid))
        # ship (warehouse), deliver (ops), return (owner)
        self.assert_error(self.req("POST", "/v1/orders/%s/ship" % oid, tok=ALICE), 403, "forbidden")
        st, o, _ = self.req("POST", "/v1/orders/%s/ship" % oid, tok=WH1)
        self.assertEqual((st, o["status"]), (200, "shipped"), o)
        self.assertEqual(self.stock("H1")["on_hand"], 7)
        self.assert_error(self.req("POST", "/v1/orders/%s/cancel" % oid, tok=ALICE), 409, "invalid_state")
        self.assert_error(self.req("POST", "/v1/orders/%s/deliver" % oid, tok=WH1), 403, "forbidden")
        st, o, _ = self.req("POST", "/v1/orders/%s/deliver" % oid, tok=OPS)
        self.assertEqual((st, o["status"]), (200, "delivered"), o)
        st, o, _ = self.req("POST", "/v1/orders/%s/return" % oid, tok=ALICE)
        self.assertEqual((st, o["status"], o["payment"]["status"]), (200, "returned", "refunded"), o)
        self.assertEqual(self.stock("H1")["on_hand"], 10)
        [auth] = self.ledger_for(oid)
        self.assertEqual((auth["status"], auth["captured_minor"], auth["refunded_minor"]),
                         ("refunded", 3750, 3750))
        st, ev, _ = self.req("GET", "/v1/orders/%s/events" % oid, tok=ALICE)
        self.assertEqual(st, 200)
        self.assertEqual([e["eventType"] for e in ev["events"]],
                         ["order_placed", "stock_reserved", "payment_authorized", "stock_committed",
                          "order_paid", "order_shipped", "order_delivered", "order_returned",
                          "payment_refunded", "stock_restocked"])
        self.assertEqual([e["eventVersion"] for e in ev["events"]], list(range(1, 11)))
        e = ev["events"][0]
        self.assertEqual((e["aggregateType"], e["aggregateId"]), ("order", oid))
        self.assertEqual(set(e["metadata"]), {"correlationId", "causationId", "userId", "node"})
        # PostgreSQL agrees with the API.
        self.assertEqual(psql(self.dsn, "SELECT status FROM entity_state WHERE aggregate_type='order' "
                                        "AND aggregate_id='%s'" % oid), "returned")
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM events WHERE aggregate_type='order' "
                                        "AND aggregate_id='%s'" % oid), "10")

    def test_declined_payment_fails_the_order_and_frees_the_stock(self):
        self.product("D1", 500, on_hand=5)
        cid = self.cart([("D1", 2)])
        st, body, _ = self.checkout(cid, payment={"method": "card", "token": "tok_decline"})
        self.assertEqual(st, 202, body)
        o = self.settle(body["order_id"])
        self.assertEqual((o["status"], o["reason"], o["payment"]["status"]),
                         ("failed", "payment_declined", "declined"), o)
        self.assertEqual(self.stock("D1")["reserved"], 0)

    def test_insufficient_stock_fails_with_the_reason(self):
        self.product("I1", 500, on_hand=1)
        cid = self.cart([("I1", 2)])
        st, body, _ = self.checkout(cid)
        o = self.settle(body["order_id"])
        self.assertEqual((o["status"], o["reason"]), ("failed", "insufficient_stock:I1"), o)
        self.assertEqual(self.ledger_for(body["order_id"]), [])

    def test_cancel_after_payment_refunds_and_releases(self):
        self.product("C1", 700, on_hand=4)
        cid = self.cart([("C1", 4)])
        oid = self.checkout(cid)[1]["order_id"]
        self.assertEqual(self.settle(oid)["status"], "paid")
        self.assert_error(self.req("POST", "/v1/orders/%s/cancel" % oid, tok=BOB), 403, "forbidden")
        st, o, _ = self.req("POST", "/v1/orders/%s/cancel" % oid, tok=ALICE)
        self.assertEqual((st, o["status"], o["payment"]["status"]), (200, "cancelled", "refunded"), o)
        s = self.stock("C1")
        self.assertEqual((s["on_hand"], s["reserved"], s["committed"], s["available"]), (4, 0, 0, 4))
        self.assert_error(self.req("POST", "/v1/orders/%s/cancel" % oid, tok=ALICE), 409, "invalid_state")

    def test_checkout_is_idempotent(self):
        self.product("K1", 100, on_hand=10)
        cid = self.cart([("K1", 1)])
        key = {"Idempotency-Key": "chk-1"}
        st1, b1, _ = self.checkout(cid, headers=key)
        st2, b2, _ = self.checkout(cid, headers=key)
        self.assertEqual((st1, st2), (202, 202))
        self.assertEqual(b1["order_id"], b2["order_id"])
        self.settle(b1["order_id"])
        st3, b3, _ = self.checkout(cid)  # a plain retry answers the same order
        self.assertEqual((st3, b3["order_id"], b3["status"]), (202, b1["order_id"], "paid"))
        self.assertEqual(len(self.ledger_for(b1["order_id"])), 1)
        self.assertEqual(self.stock("K1")["committed"], 1)

    def test_owner_checks(self):
        self.product("O1", 100, on_hand=10)
        cid = self.cart([("O1", 1)])
        self.assert_error(self.checkout(cid, tok=BOB), 403, "forbidden")
        self.assert_error(self.checkout(cid, tok=WH1), 403, "forbidden")
        oid = self.checkout(cid)[1]["order_id"]
        self.settle(oid)
        self.assert_error(self.req("GET", "/v1/orders/" + oid, tok=BOB), 403, "forbidden")
        self.assert_error(self.req("GET", "/v1/orders/%s/events" % oid, tok=BOB), 403, "forbidden")
        self.assert_error(self.req("GET", "/v1/orders/" + oid), 401, "unauthenticated")
        self.assertEqual(self.req("GET", "/v1/orders/" + oid, tok=OPS)[0], 200)
        self.assertEqual(self.req("GET", "/v1/orders/" + oid, tok=WH1)[0], 200)  # ships it
        self.assert_error(self.req("GET", "/v1/orders/ord_nope", tok=OPS), 404, "not_found")
        self.assert_error(self.req("POST", "/v1/orders/%s/fly" % oid, tok=OPS), 404, "not_found")
        self.assert_error(self.req("GET", "/v1/orders/%s/cancel" % oid, tok=OPS), 405, "method_not_allowed")

    def test_bad_input_changes_nothing(self):
        self.product("B1", 100, on_hand=10)
        cid = self.cart([("B1", 1)])
        bad = [
            ({"shipping": SHIP}, "payment"),
            ({"payment": PAY}, "shipping"),
            ({"payment": "card", "shipping": SHIP}, "payment"),
            ({"payment": {"method": "card"}, "shipping": SHIP}, "payment.token"),
            ({"payment": {"method": "cash", "token": "t"}, "shipping": SHIP}, "payment.method"),
            ({"payment": {"method": "card", "token": ""}, "shipping": SHIP}, "payment.token"),
            ({"payment": {"method": "card", "token": 5}, "shipping": SHIP}, "payment.token"),
            ({"payment": dict(PAY, cvv="123"), "shipping": SHIP}, "payment.cvv"),
            ({"payment": PAY, "shipping": {"country": "Germany"}}, "shipping.country"),
            ({"payment": PAY, "shipping": {"city": "Berlin"}}, "shipping.country"),
            ({"payment": PAY, "shipping": {"country": "DE", "zip": 10115}}, "shipping.zip"),
            ({"payment": PAY, "shipping": SHIP, "coupon": "X"}, "coupon"),
        ]
        for body, field in bad:
            self.assert_error(self.req("POST", "/v1/carts/%s/checkout" % cid, body, ALICE), 400,
                              "invalid_field", field)
        self.assert_error(self.req("POST", "/v1/carts/%s/checkout" % cid, "{", ALICE), 400, "bad_json")
        empty = self.cart([])
        self.assert_error(self.checkout(empty), 409, "conflict")
        self.assert_error(self.checkout("crt_unknown"), 404, "not_found")
        # unknown SKU and bad quantities never get into a cart
        self.assert_error(self.req("PUT", "/v1/carts/%s/items/NOPE" % cid, {"quantity": 1}, ALICE), 404, "not_found")
        for q in (-1, 51, "2"):
            self.assert_error(self.req("PUT", "/v1/carts/%s/items/B1" % cid, {"quantity": q}, ALICE),
                              400, "invalid_field", "quantity")
        st, cart, _ = self.req("GET", "/v1/carts/" + cid, tok=ALICE)
        self.assertEqual((cart["status"], len(cart["items"])), ("open", 1))
        self.assertEqual(self.stock("B1")["reserved"], 0)

    def test_a_changed_price_is_caught_at_checkout(self):
        self.product("R1", 100, on_hand=10)
        cid = self.cart([("R1", 2)])
        self.product("R1", 120)
        body = self.assert_error(self.checkout(cid), 409, "conflict")
        self.assertIn("price", body["message"])
        st, cart, _ = self.req("GET", "/v1/carts/" + cid, tok=ALICE)
        self.assertEqual((cart["status"], cart["total_minor"]), ("open", 240))
        st, body, _ = self.checkout(cid)
        self.assertEqual(st, 202, body)
        self.assertEqual(self.settle(body["order_id"])["total_minor"], 240)

    def test_primary_down_secondary_takes_over_then_both_down_waits_and_resumes(self):
        self.product("F1", 100, on_hand=20)
        self.primary.configure(failure_rate=1)
        try:
            oids = []
            for _ in range(4):
                oid = self.checkout(self.cart([("F1", 1)]))[1]["order_id"]
                oids.append(oid)
                self.assertEqual(self.settle(oid, until=("paid",))["status"], "paid")
            providers = [self.settle(o)["payment"]["provider"] for o in oids]
            self.assertEqual(providers[-1], "secondary", providers)
            # both down: the order waits, its stock held
            self.secondary.configure(failure_rate=1)
            oid = self.checkout(self.cart([("F1", 2)]))[1]["order_id"]
            o = self.settle(oid, until=("pending",))
            deadline = time.time() + 20
            while o["payment"]["status"] != "queued" and time.time() < deadline:
                o = self.settle(oid, until=("pending",))
                time.sleep(0.05)
            self.assertEqual((o["status"], o["payment"]["status"]), ("pending", "queued"), o)
            # restart the node meanwhile: the saga resumes from its events
            self.assertEqual(self.node.stop(), 0)
            self.node.start().wait_ready()
            self.primary.configure(failure_rate=0)
            self.secondary.configure(failure_rate=0)
            o = self.settle(oid, until=("paid",), timeout=30)
            self.assertEqual(o["status"], "paid", o)
            self.assertEqual(len([a for a in self.ledger_for(oid) if a["status"] == "captured"]), 1)
            self.assertIn("emporium_payment_breaker_state", self.req("GET", "/metrics")[1])
        finally:
            self.primary.configure(failure_rate=0)
            self.secondary.configure(failure_rate=0)

    def test_500_carts_contend_for_one_scarce_sku(self):
        units = 37
        self.product("SCARCE", 100, on_hand=units)
        buyers = [token("buyer-%d" % i, "customer") for i in range(500)]
        carts = [self.cart([("SCARCE", 1)], tok=t) for t in buyers]
        barrier = threading.Barrier(50)
        results = [None] * len(carts)

        def run(part):
            barrier.wait()
            conn = self.node.conn()
            for i in part:
                st, body, _ = self.node.request("POST", "/v1/carts/%s/checkout" % carts[i],
                                                {"payment": PAY, "shipping": SHIP}, buyers[i], conn=conn)
                results[i] = (st, body)
            conn.close()

        started = time.time()
        threads = [threading.Thread(target=run, args=(range(k, len(carts), 50),)) for k in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(r[0] == 202 for r in results), [r for r in results if r[0] != 202][:3])
        finals = [self.settle(r[1]["order_id"], tok=OPS) for r in results]
        secs = time.time() - started
        paid = [o for o in finals if o["status"] == "paid"]
        failed = [o for o in finals if o["status"] == "failed"]
        print("contention: 500 checkouts, %d paid, %d failed in %.1f s" % (len(paid), len(failed), secs),
              file=sys.stderr)
        self.assertEqual(len(paid), units)
        self.assertEqual(len(failed), 500 - units)
        self.assertTrue(all(o["reason"] == "insufficient_stock:SCARCE" for o in failed))
        s = self.stock("SCARCE")
        self.assertEqual((s["on_hand"], s["committed"], s["available"]), (units, units, 0))
        # No hold left behind once the TTL (2 s here) has passed; PostgreSQL agrees.
        time.sleep(2.5)
        s = self.stock("SCARCE")
        self.assertEqual((s["reserved"], s["committed"]), (units, units))
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM stock_holds WHERE sku='SCARCE' AND status='held'"), "0")
        self.assertEqual(psql(self.dsn, "SELECT coalesce(sum(quantity),0) FROM stock_holds WHERE sku='SCARCE' "
                                        "AND status='committed'"), str(units))
        self.assertEqual(psql(self.dsn, "SELECT reserved FROM stock_levels WHERE sku='SCARCE'"), str(units))
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM entity_state WHERE aggregate_type='order' "
                                        "AND status='paid' AND aggregate_id IN (%s)" %
                              ",".join("'%s'" % o["order_id"] for o in finals)), str(units))


class PrimaryDown(Shop):
    """The primary provider is down (nothing listens on its port) from the
    start and its breaker has seen nothing yet: the first checkout is paid
    through the secondary within the same saga step, with the node's default
    retry and timeout settings."""

    @classmethod
    def setUpClass(cls):
        cls.primary = None
        cls.secondary = FakeProvider("p2").start()
        cls.dsn = fresh_database()
        cls.node = Node(cls.dsn, EMPORIUM_PAYMENT_PRIMARY="http://127.0.0.1:%d" % free_port(),
                        EMPORIUM_PAYMENT_SECONDARY=cls.secondary.url).start()
        cls.product("D1", 500, on_hand=5)

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        cls.secondary.stop()
        assert code == 0, code

    def test_one_checkout_is_paid_through_the_secondary_within_seconds(self):
        started = time.time()
        st, body, _ = self.checkout(self.cart([("D1", 1)]))
        self.assertEqual(st, 202, body)
        o = self.settle(body["order_id"], until=("paid", "failed", "cancelled"), timeout=5)
        secs = time.time() - started
        print("primary down: one checkout paid in %.2f s" % secs, file=sys.stderr)
        self.assertEqual((o["status"], o["payment"].get("provider")), ("paid", "secondary"), o)
        self.assertLess(secs, 5)
        # One call's retries are not enough to open the primary's breaker:
        # it was the call, not the breaker, that moved on.
        self.assertEqual(self.node.metric('emporium_payment_breaker_state{provider="primary"}'), 0)
        self.assertEqual([a["status"] for a in self.ledger_for(o["order_id"])], ["captured"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
