"""End to end over HTTP against a real node and real PostgreSQL: products and
carts — prices, totals, owner checks, bad input, durability across a restart,
and expiry."""
import sys
import time
import unittest

from node import Node, fresh_database, psql, token

OPS = token("ops-1", "ops")
ALICE = token("alice", "customer")
BOB = token("bob", "customer")
WH1 = token("wh-bot", "warehouse", ["w1"])


class Carts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dsn = fresh_database()
        cls.node = Node(cls.dsn).start()
        for sku, price, cur in (("P1", 1999, "EUR"), ("P2", 350, "EUR"), ("PU", 500, "USD")):
            st, body, _ = cls.node.request("PUT", "/v1/products/" + sku,
                                           {"name": "Product " + sku, "price_minor": price,
                                            "currency": cur, "category": "test"}, OPS)
            assert st == 201, body

    @classmethod
    def tearDownClass(cls):
        cls.assertEqual(unittest.TestCase(), cls.node.stop(), 0)

    def req(self, *a, **kw):
        return self.node.request(*a, **kw)

    def assert_error(self, resp, status, code, field=None):
        st, body, _ = resp
        self.assertEqual(st, status, body)
        self.assertEqual(body["error"], code, body)
        self.assertTrue(body["message"])
        if field:
            self.assertEqual(body.get("field"), field, body)
        self.assertEqual(self.req("GET", "/healthz")[0], 200)
        return body

    def new_cart(self, tok=ALICE):
        st, body, _ = self.req("POST", "/v1/carts", None, tok)
        self.assertEqual(st, 201, body)
        return body["cart_id"]

    def test_products_are_put_by_ops_and_read_by_anyone_signed_in(self):
        st, body, _ = self.req("PUT", "/v1/products/PX", {"name": "X", "price_minor": 100,
                                                          "currency": "EUR"}, OPS)
        self.assertEqual((st, body["version"]), (201, 1))
        st, body, _ = self.req("PUT", "/v1/products/PX", {"name": "X2", "price_minor": 120,
                                                          "currency": "EUR"}, OPS)
        self.assertEqual((st, body["version"], body["name"]), (200, 2, "X2"))
        st, body, _ = self.req("GET", "/v1/products/PX", tok=ALICE)
        self.assertEqual((st, body["price_minor"], body["category"]), (200, 120, ""))
        self.assert_error(self.req("GET", "/v1/products/PX"), 401, "unauthenticated")
        self.assert_error(self.req("PUT", "/v1/products/PX", {"name": "X", "price_minor": 1,
                                                              "currency": "EUR"}, ALICE), 403, "forbidden")
        self.assert_error(self.req("GET", "/v1/products/NOPE", tok=ALICE), 404, "not_found")
        bad = [({"name": "X", "price_minor": -1, "currency": "EUR"}, "price_minor"),
               ({"name": "X", "price_minor": 1, "currency": "eur"}, "currency"),
               ({"name": "", "price_minor": 1, "currency": "EUR"}, "name"),
               ({"name": "X", "price_minor": "1", "currency": "EUR"}, "price_minor"),
               ({"name": "X", "price_minor": 1, "currency": "EUR", "colour": "red"}, "colour"),
               ({"price_minor": 1, "currency": "EUR"}, "name")]
        for body, field in bad:
            self.assert_error(self.req("PUT", "/v1/products/PX", body, OPS), 400, "invalid_field", field)
        self.assertEqual(self.req("GET", "/v1/products/PX", tok=OPS)[1]["version"], 2)
        self.assert_error(self.req("PUT", "/v1/products/bad%20id", {}, OPS), 400, "invalid_field", "sku")

    def test_contract_cart_example_with_totals(self):
        cart = self.new_cart()
        st, body, _ = self.req("PUT", "/v1/carts/%s/items/P1" % cart, {"quantity": 2}, ALICE)
        self.assertEqual(st, 200, body)
        st, body, _ = self.req("PUT", "/v1/carts/%s/items/P2" % cart, {"quantity": 3}, ALICE)
        st, body, _ = self.req("GET", "/v1/carts/" + cart, tok=ALICE)
        self.assertEqual(st, 200)
        self.assertEqual(body["cart_id"], cart)
        self.assertEqual(body["items"], [
            {"sku": "P1", "quantity": 2, "unit_price_minor": 1999, "line_total_minor": 3998},
            {"sku": "P2", "quantity": 3, "unit_price_minor": 350, "line_total_minor": 1050}])
        self.assertEqual((body["total_minor"], body["currency"], body["status"]), (5048, "EUR", "open"))
        # quantity 0 and DELETE both remove a line
        self.assertEqual(self.req("PUT", "/v1/carts/%s/items/P2" % cart, {"quantity": 0}, ALICE)[1]["total_minor"], 3998)
        st, body, _ = self.req("DELETE", "/v1/carts/%s/items/P1" % cart, tok=ALICE)
        self.assertEqual((st, body["items"], body["total_minor"], body["currency"]), (200, [], 0, ""))
        # the events and the stored row agree with the API
        types = psql(self.dsn, "SELECT string_agg(event_type, ',' ORDER BY event_version) FROM events "
                               "WHERE aggregate_type = 'cart' AND aggregate_id = '%s'" % cart)
        self.assertEqual(types, "cart_created,cart_item_set,cart_item_set,cart_item_removed,cart_item_removed")
        self.assertEqual(psql(self.dsn, "SELECT version || ' ' || owner FROM entity_state "
                                        "WHERE aggregate_type = 'cart' AND aggregate_id = '%s'" % cart), "5 alice")

    def test_a_line_takes_the_price_at_the_time_it_is_set(self):
        self.req("PUT", "/v1/products/PP", {"name": "P", "price_minor": 100, "currency": "EUR"}, OPS)
        cart = self.new_cart()
        self.req("PUT", "/v1/carts/%s/items/PP" % cart, {"quantity": 1}, ALICE)
        self.req("PUT", "/v1/products/PP", {"name": "P", "price_minor": 150, "currency": "EUR"}, OPS)
        self.assertEqual(self.req("GET", "/v1/carts/" + cart, tok=ALICE)[1]["total_minor"], 100)
        body = self.req("PUT", "/v1/carts/%s/items/PP" % cart, {"quantity": 2}, ALICE)[1]
        self.assertEqual(body["items"][0]["unit_price_minor"], 150)

    def test_owner_checks(self):
        cart = self.new_cart()
        self.req("PUT", "/v1/carts/%s/items/P1" % cart, {"quantity": 1}, ALICE)
        self.assert_error(self.req("GET", "/v1/carts/" + cart, tok=BOB), 403, "forbidden")
        self.assert_error(self.req("PUT", "/v1/carts/%s/items/P1" % cart, {"quantity": 5}, BOB), 403, "forbidden")
        self.assert_error(self.req("DELETE", "/v1/carts/%s/items/P1" % cart, tok=BOB), 403, "forbidden")
        self.assert_error(self.req("GET", "/v1/carts/" + cart), 401, "unauthenticated")
        self.assert_error(self.req("POST", "/v1/carts", None, WH1), 403, "forbidden")
        self.assertEqual(self.req("GET", "/v1/carts/" + cart, tok=OPS)[0], 200)  # ops may read
        self.assertEqual(self.req("GET", "/v1/carts/" + cart, tok=ALICE)[1]["items"][0]["quantity"], 1)

    def test_bad_input_is_refused_and_changes_nothing(self):
        cart = self.new_cart()
        self.req("PUT", "/v1/carts/%s/items/P1" % cart, {"quantity": 1}, ALICE)
        path = "/v1/carts/%s/items/" % cart
        self.assert_error(self.req("PUT", path + "P1", {"quantity": 51}, ALICE), 400, "invalid_field", "quantity")
        self.assert_error(self.req("PUT", path + "P1", {"quantity": -1}, ALICE), 400, "invalid_field", "quantity")
        self.assert_error(self.req("PUT", path + "P1", {"quantity": 1.5}, ALICE), 400, "invalid_field", "quantity")
        self.assert_error(self.req("PUT", path + "P1", {"quantity": 2**63}, ALICE), 400, "invalid_field", "quantity")
        self.assert_error(self.req("PUT", path + "P1", {}, ALICE), 400, "invalid_field", "quantity")
        self.assert_error(self.req("PUT", path + "P1", "{nope", ALICE), 400, "bad_json")
        self.assert_error(self.req("PUT", path + "NOPE", {"quantity": 1}, ALICE), 404, "not_found")
        self.assert_error(self.req("PUT", path + "PU", {"quantity": 1}, ALICE), 409, "conflict")
        self.assert_error(self.req("PUT", path + "bad%20sku", {"quantity": 1}, ALICE), 400, "invalid_field", "sku")
        self.assert_error(self.req("GET", "/v1/carts/crt_unknown", tok=ALICE), 404, "not_found")
        self.assert_error(self.req("PUT", "/v1/carts/crt_unknown/items/P1", {"quantity": 1}, ALICE), 404, "not_found")
        self.assert_error(self.req("POST", "/v1/carts", {"x": 1}, ALICE), 400, "invalid_field", "x")
        self.assert_error(self.req("PATCH", "/v1/carts/" + cart, {}, ALICE), 405, "method_not_allowed")
        # U+0000 cannot be stored by PostgreSQL: refused by name, never a 500
        self.assert_error(self.req("PUT", "/v1/products/NUL1", {"name": "a\u0000b", "price_minor": 1, "currency": "EUR"}, OPS),
                          400, "invalid_field", "name")
        self.assert_error(self.req("POST", "/v1/carts/%s/checkout" % cart,
                                   {"payment": {"method": "card", "token": "tok"},
                                    "shipping": {"country": "DE", "city": "B\u0000"}}, ALICE),
                          400, "invalid_field", "shipping.city")
        self.assert_error(self.req("POST", "/v1/carts/%s/checkout" % cart,
                                   {"payment": {"method": "card", "token": "tok"},
                                    "shipping": {"country": "DE", "k\u0000": "v"}}, ALICE),
                          400, "invalid_field", "shipping")
        self.assertEqual(self.req("GET", "/v1/products/NUL1", tok=ALICE)[0], 404)
        body = self.req("GET", "/v1/carts/" + cart, tok=ALICE)[1]
        self.assertEqual((body["items"][0]["quantity"], body["total_minor"]), (1, 1999))

    def test_create_honours_idempotency_key(self):
        h = {"Idempotency-Key": "cart-k1"}
        a = self.req("POST", "/v1/carts", None, ALICE, headers=h)
        b = self.req("POST", "/v1/carts", None, ALICE, headers=h)
        self.assertEqual((a[0], b[0]), (201, 201))
        self.assertEqual(a[1]["cart_id"], b[1]["cart_id"])
        other = self.req("POST", "/v1/carts", None, BOB, headers=h)  # keys are per caller
        self.assertNotEqual(other[1]["cart_id"], a[1]["cart_id"])
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM events WHERE event_type = 'cart_created' "
                                        "AND aggregate_id = '%s'" % a[1]["cart_id"]), "1")


class CartLifetime(unittest.TestCase):
    """Durability across a restart, and expiry, on nodes of their own."""

    def test_a_restarted_node_serves_the_same_cart(self):
        dsn = fresh_database()
        node = Node(dsn).start()
        try:
            node.request("PUT", "/v1/products/R1", {"name": "R", "price_minor": 700, "currency": "EUR"}, OPS)
            cart = node.request("POST", "/v1/carts", None, ALICE)[1]["cart_id"]
            before = node.request("PUT", "/v1/carts/%s/items/R1" % cart, {"quantity": 3}, ALICE)[1]
        finally:
            self.assertEqual(node.stop(), 0)
        node = Node(dsn).start()
        try:
            st, after, _ = node.request("GET", "/v1/carts/" + cart, tok=ALICE)
            self.assertEqual(st, 200)
            self.assertEqual(after, before)
            self.assertEqual(node.request("GET", "/v1/products/R1", tok=ALICE)[1]["price_minor"], 700)
        finally:
            self.assertEqual(node.stop(), 0)

    def test_an_untouched_cart_expires(self):
        dsn = fresh_database()
        node = Node(dsn, EMPORIUM_CART_TTL="1").start()
        try:
            cart = node.request("POST", "/v1/carts", None, ALICE)[1]["cart_id"]
            deadline = time.monotonic() + 10
            while node.request("GET", "/v1/carts/" + cart, tok=ALICE)[0] == 200:
                self.assertLess(time.monotonic(), deadline, "the cart never expired")
                time.sleep(0.2)
            st, body, _ = node.request("GET", "/v1/carts/" + cart, tok=ALICE)
            self.assertEqual((st, body["error"]), (404, "not_found"))
            self.assertEqual(psql(dsn, "SELECT status FROM entity_state WHERE aggregate_id = '%s'" % cart), "expired")
            self.assertEqual(psql(dsn, "SELECT count(*) FROM events WHERE event_type = 'cart_expired'"), "1")
        finally:
            self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
