"""The auth matrix: every route of the node's own route table (`emporium
routes`) x every kind of caller -> the status the contract gives, against a
real node. A route added to the table without a row here, or whose access
rule changed, fails the test before any request is made.

Each cell runs on fresh resources (a new cart, reservation or order of
alice's), so no cell depends on another's side effects. Callers that are let
in get the route's success status; the refused ones 401 (no token) or 403
(wrong role, another customer, a warehouse token for another warehouse)."""
import subprocess
import time
import unittest

from node import BIN, FakeProvider, Node, forge, fresh_database, token

CALLERS = ("none", "alice", "bob", "wh1", "wh2", "ops")
PAY = {"payment": {"method": "card", "token": "tok_ok"}, "shipping": {"country": "DE"}}


def row(rule, ok, none=None, alice=None, bob=None, wh1=None, wh2=None, ops=None):
    """The expected status of each caller: `ok` for those the rule lets in
    unless given, 401 without a token and 403 for the others."""
    let_in = {
        "anyone": CALLERS,
        "optional_token": CALLERS,
        "signed_in": CALLERS[1:],
        "customer_or_ops": ("alice", "bob", "ops"),
        "warehouse_or_ops": ("wh1", "ops"),
        "ops": ("ops",),
    }[rule]
    given = dict(none=none, alice=alice, bob=bob, wh1=wh1, wh2=wh2, ops=ops)
    out = {c: ok if c in let_in else (401 if c == "none" else 403) for c in CALLERS}
    out.update({c: s for c, s in given.items() if s is not None})
    return rule, out


# (method, pattern) -> (access rule, {caller: status}). The entity decides
# ownership on `signed_in` routes: those rows name who it refuses.
MATRIX = {
    ("GET", "/healthz"): row("anyone", 200),
    ("GET", "/readyz"): row("anyone", 200),
    ("GET", "/metrics"): row("anyone", 200),
    ("GET", "/v1/cluster"): row("ops", 200),
    ("GET", "/v1/cluster/owner"): row("ops", 200),
    ("POST", "/v1/cluster/nodes/{node_id}/drain"): row("ops", 404),  # a node that is not there
    ("POST", "/v1/debug/crash"): row("ops", 404),  # the failure hook, off unless enabled
    # a plain GET (no upgrade) once admitted: 400 field Upgrade
    ("GET", "/v1/ws"): row("optional_token", 400),
    ("GET", "/v1/warehouses/{warehouse}/ws"): row("warehouse_or_ops", 400),
    ("GET", "/v1/warehouses/{warehouse}/stock/{sku}"): row("warehouse_or_ops", 200),
    ("PUT", "/v1/warehouses/{warehouse}/stock/{sku}"): row("warehouse_or_ops", 200),
    ("POST", "/v1/warehouses/{warehouse}/stock/{sku}/adjust"): row("warehouse_or_ops", 200),
    ("GET", "/v1/stock/{sku}"): row("anyone", 200),
    ("POST", "/v1/reservations"): row("customer_or_ops", 201),
    ("GET", "/v1/reservations/{reservation_id}"): row("customer_or_ops", 200, bob=403),
    ("DELETE", "/v1/reservations/{reservation_id}"): row("customer_or_ops", 200, bob=403),
    ("GET", "/v1/products/{sku}"): row("signed_in", 200),
    ("PUT", "/v1/products/{sku}"): row("ops", 200),
    ("POST", "/v1/carts"): row("customer_or_ops", 201),
    ("GET", "/v1/carts/{cart_id}"): row("signed_in", 200, bob=403, wh1=403, wh2=403),
    ("PUT", "/v1/carts/{cart_id}/items/{sku}"): row("signed_in", 200, bob=403, wh1=403, wh2=403),
    ("DELETE", "/v1/carts/{cart_id}/items/{sku}"): row("signed_in", 200, bob=403, wh1=403, wh2=403),
    ("POST", "/v1/carts/{cart_id}/checkout"): row("customer_or_ops", 202, bob=403),
    # orders: the owner, ops, and for reads and ship a warehouse holding an allocation (w1)
    ("GET", "/v1/orders/{order_id}"): row("signed_in", 200, bob=403, wh2=403),
    ("GET", "/v1/orders/{order_id}/events"): row("signed_in", 200, bob=403, wh2=403),
    ("POST", "/v1/orders/{order_id}/cancel"): row("signed_in", 200, bob=403, wh1=403, wh2=403),
    ("POST", "/v1/orders/{order_id}/ship"): row("signed_in", 200, alice=403, bob=403, wh2=403),
    ("POST", "/v1/orders/{order_id}/deliver"): row("signed_in", 200, alice=403, bob=403, wh1=403,
                                                   wh2=403),
    ("POST", "/v1/orders/{order_id}/return"): row("signed_in", 200, bob=403, wh1=403, wh2=403),
}

# What a route's body is, when it needs one.
BODIES = {
    ("PUT", "/v1/warehouses/{warehouse}/stock/{sku}"): lambda: {"on_hand": 100000,
                                                                "seq": time.time_ns()},
    ("POST", "/v1/warehouses/{warehouse}/stock/{sku}/adjust"): lambda: {"delta": 1},
    ("POST", "/v1/reservations"): lambda: {"sku": "M1", "quantity": 1, "warehouse": "w1", "ttl_s": 60},
    ("PUT", "/v1/products/{sku}"): lambda: {"name": "M1", "price_minor": 100, "currency": "EUR"},
    ("PUT", "/v1/carts/{cart_id}/items/{sku}"): lambda: {"quantity": 2},
    ("POST", "/v1/carts/{cart_id}/checkout"): lambda: PAY,
}

# The order's status before each order action (fresh order per cell).
ORDER_BEFORE = {"ship": "paid", "deliver": "shipped", "return": "delivered"}


def node_routes():
    out = subprocess.run([BIN, "routes"], check=True, capture_output=True, text=True).stdout
    return {(m, p): rule for m, p, rule in (line.split() for line in out.splitlines())}


class AuthMatrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.provider = FakeProvider("p1").start()
        cls.node = Node(fresh_database(), EMPORIUM_PAYMENT_PRIMARY=cls.provider.url,
                        EMPORIUM_RATE_LIMIT_PUBLIC="0", EMPORIUM_RATE_LIMIT_CUSTOMER="0").start()
        cls.tokens = {
            "none": None,
            "alice": token("alice", "customer"),
            "bob": token("bob", "customer"),
            "wh1": token("wh-1", "warehouse", ["w1"]),
            "wh2": token("wh-2", "warehouse", ["w2"]),
            "ops": token("ops-1", "ops"),
        }
        cls.call("PUT", "/v1/products/M1", {"name": "M1", "price_minor": 100, "currency": "EUR"},
                 "ops", expect=(200, 201))
        cls.call("PUT", "/v1/warehouses/w1/stock/M1", {"on_hand": 100000, "seq": 1}, "ops", expect=(200,))

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        cls.provider.stop()
        assert code == 0, code

    @classmethod
    def call(cls, method, path, body=None, caller="alice", expect=None):
        st, out, _ = cls.node.request(method, path, body, cls.tokens[caller])
        if expect is not None:
            assert st in expect, (method, path, st, out)
        return st, out

    # -- fresh resources of alice's ---------------------------------------------------

    def cart(self):
        cid = self.call("POST", "/v1/carts", expect=(201,))[1]["cart_id"]
        self.call("PUT", "/v1/carts/%s/items/M1" % cid, {"quantity": 1}, expect=(200,))
        return cid

    def reservation(self):
        return self.call("POST", "/v1/reservations", BODIES[("POST", "/v1/reservations")](),
                         expect=(201,))[1]["reservation_id"]

    def order(self, status="paid"):
        oid = self.call("POST", "/v1/carts/%s/checkout" % self.cart(), PAY, expect=(202,))[1]["order_id"]
        self.wait(oid, "paid")
        for action, reached in (("ship", "shipped"), ("deliver", "delivered")):
            if status == "paid":
                break
            self.call("POST", "/v1/orders/%s/%s" % (oid, action), None, "ops", expect=(200,))
            if status == reached:
                break
        return oid

    def wait(self, oid, status):
        deadline = time.time() + 20
        while True:
            o = self.call("GET", "/v1/orders/" + oid, expect=(200,))[1]
            if o["status"] == status:
                return
            self.assertLess(time.time(), deadline, o)
            time.sleep(0.02)

    def target(self, method, pattern):
        parts = []
        for seg in pattern.split("/"):
            if seg == "{warehouse}":
                seg = "w1"
            elif seg == "{sku}":
                seg = "M1"
            elif seg == "{node_id}":
                seg = "nosuch"
            elif seg == "{reservation_id}":
                seg = self.reservation()
            elif seg == "{cart_id}":
                seg = self.cart()
            elif seg == "{order_id}":
                seg = self.order(ORDER_BEFORE.get(pattern.rsplit("/", 1)[1], "paid"))
            parts.append(seg)
        path = "/".join(parts)
        return path + "?sku=M1" if pattern == "/v1/cluster/owner" else path

    # -- the matrix ----------------------------------------------------------------------

    def test_every_route_has_a_row_and_its_rule(self):
        routes = node_routes()
        self.assertEqual(sorted(set(routes) - set(MATRIX)), [], "routes without a row in MATRIX")
        self.assertEqual(sorted(set(MATRIX) - set(routes)), [], "rows for routes the node lacks")
        for key, rule in routes.items():
            self.assertEqual(rule, MATRIX[key][0], key)

    def test_every_route_and_caller_gets_its_status(self):
        wrong = []
        for (method, pattern), (_, expected) in sorted(MATRIX.items()):
            for caller in CALLERS:
                path = self.target(method, pattern)
                body = BODIES.get((method, pattern), lambda: None)()
                st, out = self.call(method, path, body, caller)
                if st != expected[caller]:
                    wrong.append("%s %s as %s: %d, expected %d (%s)" % (
                        method, pattern, caller, st, expected[caller], str(out)[:100]))
        self.assertEqual(wrong, [], "\n".join(wrong))

    def test_a_bad_token_is_401_on_every_route_that_reads_tokens(self):
        bad = {"expired": forge({"sub": "alice", "role": "customer", "exp": int(time.time()) - 10}),
               "garbage": "not.a.jwt"}
        wrong = []
        for (method, pattern), (rule, _) in sorted(MATRIX.items()):
            if rule == "anyone":
                continue  # a token sent there is ignored
            for name, tok in bad.items():
                self.tokens["bad"] = tok
                st, _ = self.call(method, self.target(method, pattern),
                                  BODIES.get((method, pattern), lambda: None)(), "bad")
                if st != 401:
                    wrong.append("%s %s with a %s token: %d" % (method, pattern, name, st))
        self.assertEqual(wrong, [], "\n".join(wrong))


if __name__ == "__main__":
    unittest.main(verbosity=2)
