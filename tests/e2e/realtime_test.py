"""End to end over WebSockets (a Beast client, ws_tool) against a real node and
real PostgreSQL: storefront stock fan-out with stalled readers, order status
for its owner, bad frames, limits and the idle timeout; warehouse stock push
of 10 000 items, idempotent resends, bad items and the auth matrix."""
import base64
import os
import socket
import time
import unittest

from node import Node, WsClient, fresh_database, psql, token, ws_tool

OPS = token("ops-1", "ops")
ALICE = token("alice", "customer")
BOB = token("bob", "customer")
WH1 = token("wh-bot", "warehouse", ["w1"])
WH2 = token("wh-2", "warehouse", ["w2"])


class Realtime(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dsn = fresh_database()
        cls.node = Node(cls.dsn, EMPORIUM_WS_IDLE_TIMEOUT="4",
                        EMPORIUM_WS_MAX_SUBSCRIPTIONS="5").start()

    @classmethod
    def tearDownClass(cls):
        assert cls.node.stop() == 0

    def ws(self, path="/v1/ws", tok=None):
        c = WsClient(self.node.port, path, tok)
        self.addCleanup(c.close)
        return c

    def push(self, sku, on_hand, wh="w1", tok=WH1):
        st, body, _ = self.node.request("PUT", "/v1/warehouses/%s/stock/%s" % (wh, sku),
                                        {"on_hand": on_hand, "seq": int(time.time() * 1e6)}, tok)
        self.assertEqual(st, 200, body)

    # -- storefront ---------------------------------------------------------------------

    def test_hundred_subscribers_see_every_change_while_stalled_readers_coalesce(self):
        self.push("FAN", 1, "w2", WH2)  # a second warehouse in the aggregate
        before = self.node.metric("emporium_ws_frames_coalesced_total")
        r = ws_tool("fanout", "--port", self.node.port, "--sku", "FAN", "--wh", "w1",
                    "--token", WH1, "--subscribers", 100, "--changes", 600, "--stalled", 3)
        print("\n  fan-out to 100 subscribers (3 stalled):", r)
        self.assertEqual(r["initial"], 100)
        self.assertEqual(r["delivered"], 100 * 600, "every reader saw every change")
        # The stalled readers' frames were replaced, not queued: at most one
        # waits per subscription.
        self.assertGreater(self.node.metric("emporium_ws_frames_coalesced_total"), before)
        self.assertLessEqual(self.node.metric("emporium_ws_pending_frames"), 3)

    def test_stock_frame_is_the_aggregate_and_follows_changes(self):
        self.push("AGG", 7, "w1")
        self.push("AGG", 3, "w2", WH2)
        c = self.ws()
        self.assertEqual(c.state, "open")
        c.send({"op": "subscribe", "topic": "stock", "sku": "AGG"})
        f = c.recv()
        self.assertEqual(f["type"], "stock")
        self.assertEqual((f["sku"], f["available"]), ("AGG", 10))
        self.assertEqual(sorted(w["warehouse"] for w in f["warehouses"]), ["w1", "w2"])
        first_version = f["version"]
        st, res, _ = self.node.request("POST", "/v1/reservations",
                                       {"sku": "AGG", "quantity": 4, "warehouse": "w1"}, ALICE)
        self.assertEqual(st, 201, res)
        f = c.recv()
        self.assertEqual(f["available"], 6)
        self.assertGreater(f["version"], first_version)
        w1 = [w for w in f["warehouses"] if w["warehouse"] == "w1"][0]
        self.assertEqual((w1["on_hand"], w1["reserved"], w1["available"]), (7, 4, 3))
        # Not stocked yet: 0, then the first push.
        c.send({"op": "subscribe", "topic": "stock", "sku": "NEWSKU"})
        f = c.recv()
        self.assertEqual((f["sku"], f["available"], f["warehouses"]), ("NEWSKU", 0, []))
        self.push("NEWSKU", 5)
        f = c.recv()
        self.assertEqual((f["available"], len(f["warehouses"])), (5, 1))
        # Unsubscribed: no more frames for it.
        c.send({"op": "unsubscribe", "topic": "stock", "sku": "NEWSKU"})
        time.sleep(0.2)  # let the unsubscribe land before the change (not a timing assertion)
        self.push("NEWSKU", 6)
        self.push("AGG", 8)
        f = c.recv()
        self.assertEqual(f["sku"], "AGG")

    def test_order_status_for_its_owner_only(self):
        st, body, _ = self.node.request("PUT", "/v1/products/ORD1",
                                        {"name": "x", "price_minor": 100, "currency": "EUR"}, OPS)
        self.assertIn(st, (200, 201), body)
        self.push("ORD1", 5)
        st, cart, _ = self.node.request("POST", "/v1/carts", None, ALICE)
        cid = cart["cart_id"]
        self.node.request("PUT", "/v1/carts/%s/items/ORD1" % cid, {"quantity": 1}, ALICE)
        st, order, _ = self.node.request("POST", "/v1/carts/%s/checkout" % cid,
                                         {"payment": {"method": "card", "token": "tok_ok"},
                                          "shipping": {"country": "DE"}}, ALICE)
        self.assertEqual(st, 202, order)
        oid = order["order_id"]
        anon = self.ws()
        anon.send({"op": "subscribe", "topic": "order", "order_id": oid})
        self.assertEqual(anon.recv()["error"], "unauthenticated")
        bob = self.ws(tok=BOB)
        bob.send({"op": "subscribe", "topic": "order", "order_id": oid})
        self.assertEqual(bob.recv()["error"], "forbidden")
        bob.send({"op": "subscribe", "topic": "order", "order_id": "no-such-order"})
        self.assertEqual(bob.recv()["error"], "not_found")
        # The owner, with the token in the query as a browser would send it.
        alice = self.ws("/v1/ws?access_token=" + ALICE)
        alice.send({"op": "subscribe", "topic": "order", "order_id": oid})
        f = alice.recv()
        self.assertEqual((f["type"], f["order_id"]), ("order", oid))
        self.assertEqual(f["status"], "pending")  # no payment provider: it waits
        st, body, _ = self.node.request("POST", "/v1/orders/%s/cancel" % oid, None, ALICE)
        self.assertEqual(st, 200, body)
        f = alice.recv_until(lambda f: f.get("status") == "cancelled")
        self.assertIsNotNone(f, "the cancel was pushed")
        self.assertIsNone(bob.recv(0.3), "bob got nothing")

    def test_bad_frames_get_error_frames_and_the_connection_stays(self):
        c = self.ws()
        cases = [
            ("not json", "bad_json", None),
            ("[1,2]", "bad_json", None),
            ({"op": "watch", "topic": "stock", "sku": "S"}, "invalid_field", "op"),
            ({"op": "subscribe", "topic": "weather", "sku": "S"}, "invalid_field", "topic"),
            ({"op": "subscribe", "topic": "stock", "sku": "bad id!"}, "invalid_field", "sku"),
            ({"op": "subscribe", "topic": "stock"}, "invalid_field", "sku"),
            ({"op": "subscribe", "topic": "stock", "sku": "S", "x": 1}, "invalid_field", "x"),
            ({"op": 5, "topic": "stock", "sku": "S"}, "invalid_field", "op"),
        ]
        for frame, code, field in cases:
            c.send(frame)
            f = c.recv()
            self.assertEqual((f["type"], f["error"]), ("error", code), frame)
            self.assertEqual(f.get("field"), field, frame)
            self.assertIn("message", f)
        c.send({"op": "subscribe", "topic": "stock", "sku": "OK1"})
        self.assertEqual(c.recv()["type"], "stock", "still serving")
        # The subscription limit (5 here).
        for i in range(2, 6):
            c.send({"op": "subscribe", "topic": "stock", "sku": "OK%d" % i})
            self.assertEqual(c.recv()["type"], "stock")
        c.send({"op": "subscribe", "topic": "stock", "sku": "OK6"})
        self.assertEqual(c.recv()["error"], "rate_limited")

    def test_abuse_closes(self):
        c = self.ws()
        for _ in range(25):
            c.send("junk")
        frames = []
        while not frames or isinstance(frames[-1], dict):
            frames.append(c.recv())
        # Error frames (those not yet written when it closed are dropped), then 1008.
        self.assertEqual(frames[-1], "closed 1008", frames[-3:])
        self.assertTrue(all(f["error"] == "bad_json" for f in frames[:-1]))
        self.assertLessEqual(len(frames) - 1, 20)

    def test_silent_client_is_closed_after_the_idle_timeout(self):
        # A raw upgrade that then never reads or answers a ping.
        s = socket.create_connection(("127.0.0.1", self.node.port), timeout=20)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        head = s.recv(4096)
        self.assertIn(b"101", head.split(b"\r\n")[0])
        start = time.time()
        data = b""
        while True:  # the server pings, then closes
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        self.assertLess(time.time() - start, 15)
        self.assertIn(b"\x89", data[:1], "a ping came first")
        s.close()

    def test_upgrade_refusals(self):
        self.assertTrue(self.ws("/v1/warehouses/w1/ws").state.startswith("refused 401"))
        self.assertTrue(self.ws("/v1/warehouses/w1/ws", WH2).state.startswith("refused 403"))
        self.assertTrue(self.ws("/v1/warehouses/w1/ws", ALICE).state.startswith("refused 403"))
        self.assertTrue(self.ws("/v1/ws", "not-a-token").state.startswith("refused 401"))
        self.assertTrue(self.ws("/v1/warehouses/bad!id/ws", WH1).state.startswith("refused 400"))
        st, body, _ = self.node.request("GET", "/v1/ws")  # plain GET, no upgrade
        self.assertEqual(st, 400, body)
        self.assertEqual(self.ws("/v1/warehouses/w1/ws", OPS).state, "open")

    # -- warehouse push ---------------------------------------------------------------------

    def test_push_ten_thousand_items_in_batches(self):
        r = ws_tool("push", "--port", self.node.port, "--wh", "w1", "--token", WH1,
                    "--items", 10000, "--batch", 500, "--skus", 100, "--prefix", "WP")
        print("\n  warehouse push:", r)
        self.assertEqual((r["acked"], r["applied"], r["errors"]), (10000, 10000, 0))
        # Item i went to WP(i % 100) with on_hand i, seq i + 1: the last one wins.
        rows = psql(self.dsn, "SELECT sku, on_hand, last_seq FROM stock_levels "
                              "WHERE warehouse = 'w1' AND sku LIKE 'WP%' ORDER BY sku")
        got = {line.split("|")[0]: tuple(map(int, line.split("|")[1:])) for line in rows.splitlines()}
        self.assertEqual(len(got), 100)
        for k in range(100):
            self.assertEqual(got["WP%d" % k], (9900 + k, 9901 + k))
        events = psql(self.dsn, "SELECT count(*) FROM events WHERE aggregate_id LIKE 'WP%@w1'")
        self.assertEqual(int(events), 10000)
        # A resend after a reconnect: every item acked, none applied, nothing written.
        r = ws_tool("push", "--port", self.node.port, "--wh", "w1", "--token", WH1,
                    "--items", 10000, "--batch", 500, "--skus", 100, "--prefix", "WP")
        self.assertEqual((r["acked"], r["applied"], r["errors"]), (10000, 0, 0))
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM events WHERE aggregate_id LIKE 'WP%@w1'"),
                         events)

    def test_a_bad_item_is_named_and_the_others_go_on(self):
        c = self.ws("/v1/warehouses/w1/ws", WH1)
        c.send({"batch": [{"sku": "B1", "on_hand": 5, "seq": 1},
                          {"sku": "B2", "on_hand": -1, "seq": 1},
                          {"sku": "bad id", "on_hand": 1, "seq": 1},
                          {"sku": "B3", "on_hand": 1, "seq": 1, "colour": "red"},
                          {"sku": "B4", "on_hand": 2, "seq": 1}]})
        frames = [c.recv() for _ in range(5)]
        acks = sorted((f["sku"], f["ack"], f["applied"]) for f in frames if "ack" in f)
        self.assertEqual(acks, [("B1", 1, True), ("B4", 1, True)])
        errors = {f["index"]: f for f in frames if f.get("type") == "error"}
        self.assertEqual(sorted(errors), [1, 2, 3])
        self.assertEqual((errors[1]["field"], errors[1]["sku"], errors[1]["seq"]), ("on_hand", "B2", 1))
        self.assertEqual(errors[2]["field"], "sku")
        self.assertEqual(errors[3]["field"], "colour")
        # Single items, an old seq, and frames that are not items at all.
        c.send({"sku": "B1", "on_hand": 9, "seq": 1})
        self.assertEqual(c.recv(), {"ack": 1, "applied": False, "sku": "B1"})
        c.send("{{{")
        self.assertEqual(c.recv()["error"], "bad_json")
        c.send({"batch": {"sku": "B1"}})
        self.assertEqual((c.recv()["field"]), "batch")
        c.send({"sku": "B1", "on_hand": 10, "seq": 2})
        self.assertEqual(c.recv(), {"ack": 2, "applied": True, "sku": "B1"})
        self.assertEqual(psql(self.dsn, "SELECT on_hand FROM stock_levels WHERE sku = 'B1'"), "10")
        self.assertEqual(psql(self.dsn, "SELECT count(*) FROM stock_levels WHERE sku IN ('B2', 'B3')"), "0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
