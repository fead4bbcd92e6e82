"""End to end: the transactional outbox reaches Kafka. A real node and real
PostgreSQL; Kafka is librdkafka's mock cluster, inside the node (embedded) or
in a process of its own that the test takes down and brings back. A
librdkafka consumer reads the topics back."""
import collections
import json
import subprocess
import threading
import time
import unittest

from node import FakeProvider, MockKafka, Node, consume, fresh_database, psql, token

OPS = token("ops-1", "ops")
ALICE = token("alice", "customer")
WH1 = token("wh-bot", "warehouse", ["w1"])
TOPICS = ["inventory", "orders", "carts"]
TOPIC_OF = {"stock": "inventory", "product": "inventory", "cart": "carts", "order": "orders"}
ENVELOPE = ["eventId", "eventType", "aggregateId", "aggregateType", "eventVersion", "eventTime",
            "data", "metadata"]


def committed_events(dsn):
    """Every event row, as the envelope the relay must have produced."""
    rows = psql(dsn, "SELECT json_build_object('eventId', event_id, 'eventType', event_type, "
                     "'aggregateId', aggregate_id, 'aggregateType', aggregate_type, "
                     "'eventVersion', event_version, 'data', data, 'metadata', metadata, "
                     "'published', (txid, position, event_version) "
                     "<= (SELECT txid, position, event_version FROM outbox_progress)) "
                     "FROM events ORDER BY position, event_version")
    return [json.loads(r) for r in rows.splitlines()]


def event_insert(sku, versions, txids=None):
    """SQL inserting hand-made stock events of SKU@w1 (with explicit txids if given)."""
    data = json.dumps({"delta": 1, "sku": sku, "warehouse": "w1"})
    meta = json.dumps({"correlationId": "test", "causationId": "", "userId": "test", "node": "test"})
    rows = ["(gen_random_uuid(), 'stock', '%s@w1', %d, 'stock_adjusted', now(), '%s', '%s'%s)"
            % (sku, v, data, meta, ", '%d'" % txids[i] if txids else "") for i, v in enumerate(versions)]
    return ("INSERT INTO events (event_id, aggregate_type, aggregate_id, event_version, event_type, "
            "event_time, data, metadata%s) VALUES %s;" % (", txid" if txids else "", ", ".join(rows)))


def wait_published(node, dsn, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if psql(dsn, "SELECT count(*) FROM outbox_pending") == "0":
            return
        time.sleep(0.1)
    raise AssertionError("the outbox did not drain: lag %s" % node.metric("emporium_outbox_lag_events"))


class OutboxChecks(unittest.TestCase):
    def check_delivered(self, dsn, messages):
        """Every committed event arrived (duplicates only as the same eventId),
        envelope exact, topic and key right, and per aggregate in version order."""
        rows = committed_events(dsn)
        self.assertTrue(rows)
        by_id = {}
        per_key = collections.defaultdict(list)  # (topic, partition, key) -> versions in offset order
        for m in sorted(messages, key=lambda m: (m["topic"], m["partition"], m["offset"])):
            v = m["value"]
            self.assertEqual(list(v.keys()), ENVELOPE, v)
            self.assertEqual(m["key"], v["aggregateId"])
            self.assertEqual(m["topic"], TOPIC_OF[v["aggregateType"]], v)
            if v["eventId"] in by_id:
                self.assertEqual(by_id[v["eventId"]], v, "a duplicate must be the same event")
                continue
            by_id[v["eventId"]] = v
            per_key[(m["topic"], m["partition"], m["key"])].append(v["eventVersion"])
        self.assertEqual(len(by_id), len(rows), "every committed event, once")
        for r in rows:
            self.assertTrue(r["published"], r)
            v = by_id[r["eventId"]]
            for k in ("eventType", "aggregateId", "aggregateType", "eventVersion", "data",
                      "metadata"):
                self.assertEqual(v[k], r[k], (k, r))
            self.assertRegex(v["eventTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(set(v["metadata"]), {"correlationId", "causationId", "userId", "node"})
        keys = collections.Counter()
        for (topic, _, key), versions in per_key.items():
            keys[key] += 1
            self.assertEqual(versions, list(range(1, len(versions) + 1)), (topic, key))
        self.assertTrue(all(n == 1 for n in keys.values()), "one partition per key")


class Embedded(OutboxChecks):
    """The default: the node's own in-memory broker."""

    def test_inventory_carts_and_orders_reach_their_topics(self):
        provider = FakeProvider("p1").start()
        dsn = fresh_database()
        node = Node(dsn, EMPORIUM_PAYMENT_PRIMARY=provider.url).start()
        try:
            r = node.request
            self.assertIn(r("PUT", "/v1/products/K1", {"name": "K1", "price_minor": 500,
                                                       "currency": "EUR"}, OPS)[0], (200, 201))
            for seq in (1, 2, 3):
                self.assertEqual(r("PUT", "/v1/warehouses/w1/stock/K1",
                                   {"on_hand": 10 * seq, "seq": seq}, WH1)[0], 200)
            st, res, _ = r("POST", "/v1/reservations", {"sku": "K1", "quantity": 2}, ALICE)
            self.assertEqual(st, 201, res)
            self.assertEqual(r("DELETE", "/v1/reservations/" + res["reservation_id"], tok=ALICE)[0], 200)
            st, cart, _ = r("POST", "/v1/carts", None, ALICE)
            cid = cart["cart_id"]
            self.assertEqual(r("PUT", "/v1/carts/%s/items/K1" % cid, {"quantity": 3}, ALICE)[0], 200)
            st, order, _ = r("POST", "/v1/carts/%s/checkout" % cid,
                             {"payment": {"method": "card", "token": "tok_ok"},
                              "shipping": {"country": "DE"}}, ALICE)
            self.assertEqual(st, 202, order)
            deadline = time.time() + 20
            while r("GET", "/v1/orders/" + order["order_id"], tok=ALICE)[1]["status"] != "paid":
                self.assertLess(time.time(), deadline)
                time.sleep(0.05)
            wait_published(node, dsn)
            rows = committed_events(dsn)
            messages = consume(node.kafka_bootstrap(), TOPICS, count=len(rows))
            self.check_delivered(dsn, messages)
            types = {m["value"]["aggregateType"]: m["topic"] for m in messages}
            self.assertEqual(types, {"product": "inventory", "stock": "inventory",
                                     "cart": "carts", "order": "orders"})
            order_events = [m["value"]["eventType"] for m in messages if m["topic"] == "orders"]
            self.assertEqual(order_events[0], "order_placed")
            self.assertIn("order_paid", order_events)
            self.assertEqual(node.metric("emporium_outbox_lag_events"), 0)
        finally:
            self.assertEqual(node.stop(), 0)
            provider.stop()


class StockLow(OutboxChecks):
    def test_stock_low_is_published_once_per_crossing_of_the_threshold(self):
        dsn = fresh_database()
        node = Node(dsn).start()
        try:
            r = node.request
            self.assertEqual(r("PUT", "/v1/warehouses/w1/stock/LOW1",
                               {"on_hand": 6, "seq": 1, "low_stock_threshold": 3}, WH1)[0], 200)
            for _ in range(4):  # available 5, 4, 3 (crosses), 2
                st, body, _ = r("POST", "/v1/reservations",
                                {"sku": "LOW1", "quantity": 1, "warehouse": "w1"}, ALICE)
                self.assertEqual(st, 201, body)
            self.assertEqual(r("PUT", "/v1/warehouses/w1/stock/LOW1",
                               {"on_hand": 20, "seq": 2}, WH1)[0], 200)  # above again: 16
            st, body, _ = r("POST", "/v1/reservations",
                            {"sku": "LOW1", "quantity": 14, "warehouse": "w1"}, ALICE)  # 2: crosses
            self.assertEqual(st, 201, body)
            wait_published(node, dsn)
            messages = consume(node.kafka_bootstrap(), ["inventory"], idle_ms=3000)
            self.check_delivered(dsn, messages)
            low = [m["value"] for m in sorted(messages, key=lambda m: m["offset"])
                   if m["value"]["eventType"] == "stock_low"]
            self.assertEqual([(v["aggregateId"], v["data"]["available"], v["data"]["low_stock_threshold"])
                              for v in low], [("LOW1@w1", 3, 3), ("LOW1@w1", 2, 3)], low)
        finally:
            self.assertEqual(node.stop(), 0)


class LateCommit(OutboxChecks):
    """The relay's high-water mark never passes an event whose transaction took
    its position early and commits late: until that transaction ends nothing
    younger is relayed, and afterwards every event arrives once, in order."""

    def test_a_late_commit_is_not_skipped(self):
        dsn = fresh_database()
        node = Node(dsn).start()
        held = None
        try:
            r = node.request
            self.assertEqual(r("PUT", "/v1/warehouses/w1/stock/LT0", {"on_hand": 1, "seq": 1}, WH1)[0], 200)
            wait_published(node, dsn)
            held = subprocess.Popen(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, text=True)
            held.stdin.write("BEGIN; " + event_insert("LATE", [1]) + "\n")
            held.stdin.flush()
            deadline = time.time() + 10
            while psql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                            "AND datname = current_database()") != "1":
                self.assertLess(time.time(), deadline, "the held transaction never started")
                time.sleep(0.05)
            for seq in range(1, 21):  # positions after the held one, committed first
                self.assertEqual(r("PUT", "/v1/warehouses/w1/stock/LT1", {"on_hand": seq, "seq": seq}, WH1)[0], 200)
            # Many relay rounds (one every 20 ms when idle): none may pass the held transaction.
            time.sleep(1.5)
            self.assertEqual(psql(dsn, "SELECT count(*) FROM outbox_pending"), "20")
            self.assertGreaterEqual(node.metric("emporium_outbox_lag_events"), 20)
            held.stdin.write("COMMIT;\n")
            held.stdin.close()
            self.assertEqual(held.wait(timeout=10), 0)
            held = None
            wait_published(node, dsn)
            rows = committed_events(dsn)
            self.assertEqual(len(rows), 22)
            messages = consume(node.kafka_bootstrap(), ["inventory"], count=len(rows))
            self.check_delivered(dsn, messages)
            self.assertIn("LATE@w1", [m["key"] for m in messages])
        finally:
            if held:
                held.kill()
            self.assertEqual(node.stop(), 0)

    def test_relay_order_is_numeric_in_txid(self):
        """Events are relayed in (txid, position) order as numbers: txid 9 before
        txid 10, which sort the other way round as text."""
        dsn = fresh_database()
        node = Node(dsn).start()
        try:
            psql(dsn, "BEGIN; " + event_insert("TXO", [1, 2], txids=[9, 10])
                 + " UPDATE outbox_progress SET txid = '8', position = 0; COMMIT;")
            wait_published(node, dsn)
            messages = consume(node.kafka_bootstrap(), ["inventory"], count=2)
            self.assertEqual([m["value"]["eventVersion"] for m in messages], [1, 2])
            self.check_delivered(dsn, messages)
        finally:
            self.assertEqual(node.stop(), 0)


class BigBatches(OutboxChecks):
    """An outbox row holds one entity batch: rows larger than a relay round
    (1 000 events) are delivered across rounds, the mark inside a row, every
    event once and in order; a flash sale's batches arrive exactly."""

    def test_rows_larger_than_a_round_and_a_flash_sale(self):
        dsn = fresh_database()
        node = Node(dsn).start()
        try:
            psql(dsn, "INSERT INTO event_batches (aggregate_type, aggregate_id, first_version, node, "
                      "event_ids, event_types, event_times, data, correlation_ids, causation_ids, user_ids) "
                      "SELECT 'stock', 'BIG' || b || '@w1', 1, 'test', array_agg(gen_random_uuid() ORDER BY i), "
                      "array_agg('stock_adjusted'::text ORDER BY i), array_agg(1700000000000 + i ORDER BY i), "
                      "array_agg(jsonb_build_object('delta', i) ORDER BY i), array_agg('c'::text ORDER BY i), "
                      "array_agg(''::text ORDER BY i), array_agg('u'::text ORDER BY i) "
                      "FROM generate_series(1, 2) b, generate_series(1, 1500) i GROUP BY b")
            st, _, _ = node.request("PUT", "/v1/warehouses/w1/stock/FL", {"on_hand": 300, "seq": 1}, WH1)
            self.assertEqual(st, 200)
            outcomes = collections.Counter()
            lock = threading.Lock()

            def buyer():
                c = node.conn()
                for _ in range(20):
                    st, _, _ = node.request("POST", "/v1/reservations", {"sku": "FL", "quantity": 1},
                                            ALICE, conn=c)
                    with lock:
                        outcomes[st] += 1

            threads = [threading.Thread(target=buyer) for _ in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(outcomes, {201: 300, 409: 340})
            batches = int(psql(dsn, "SELECT count(*) FROM event_batches WHERE aggregate_id = 'FL@w1'"))
            self.assertLess(batches, 301)  # some batches of several reservations
            wait_published(node, dsn)
            rows = committed_events(dsn)
            self.assertEqual(len(rows), 3000 + 301)
            messages = consume(node.kafka_bootstrap(), ["inventory"], count=len(rows))
            self.check_delivered(dsn, messages)
            deadline = time.time() + 5  # the gauge is refreshed once a second
            while node.metric("emporium_outbox_lag_events") != 0:
                self.assertLess(time.time(), deadline, "the lag gauge stayed above 0")
                time.sleep(0.1)
        finally:
            self.assertEqual(node.stop(), 0)


class Outage(OutboxChecks):
    """Kafka goes away while the shop keeps writing; when it is back every
    event arrives, per-aggregate order intact, and HTTP never saw an error."""

    def test_kafka_down_then_back(self):
        kafka = MockKafka(brokers=3)
        dsn = fresh_database()
        node = Node(dsn, EMPORIUM_KAFKA=kafka.bootstrap, EMPORIUM_KAFKA_TIMEOUT_MS="1000").start()
        try:
            seq = collections.Counter()

            def push(n, skus):
                for i in range(n):
                    sku = skus[i % len(skus)]
                    seq[sku] += 1
                    st, body, _ = node.request("PUT", "/v1/warehouses/w1/stock/" + sku,
                                               {"on_hand": seq[sku], "seq": seq[sku]}, WH1)
                    self.assertEqual(st, 200, body)

            skus = ["OUT%d" % i for i in range(8)]
            push(40, skus)
            wait_published(node, dsn)
            kafka.down()
            push(200, skus)  # the shop goes on
            deadline = time.time() + 20
            while node.metric("emporium_outbox_lag_events") < 100:
                self.assertLess(time.time(), deadline, "lag never showed")
                time.sleep(0.2)
            self.assertGreater(node.metric("emporium_outbox_lag_seconds"), 0)
            self.assertEqual(node.request("GET", "/readyz")[0], 200)
            deadline = time.time() + 20
            while node.metric("emporium_outbox_breaker_state") == 0:
                self.assertLess(time.time(), deadline, "the breaker never opened")
                time.sleep(0.2)
            unpublished = int(psql(dsn, "SELECT count(*) FROM outbox_pending"))
            self.assertGreaterEqual(unpublished, 200)
            kafka.up()
            push(40, skus)
            wait_published(node, dsn)
            rows = committed_events(dsn)
            self.assertEqual(len(rows), 280)
            messages = consume(kafka.bootstrap, ["inventory"], idle_ms=3000)
            self.check_delivered(dsn, messages)
            self.assertEqual(node.metric("emporium_outbox_lag_events"), 0)
        finally:
            self.assertEqual(node.stop(), 0)
            kafka.stop()


class Failover(OutboxChecks):
    """Two nodes on one database: one relay is active, the other takes over
    when it dies; a crash mid-relay loses nothing (duplicates are allowed,
    as the same eventId)."""

    def test_standby_takes_over_after_a_crash(self):
        kafka = MockKafka(brokers=1)
        dsn = fresh_database()
        env = dict(EMPORIUM_KAFKA=kafka.bootstrap)
        a = Node(dsn, EMPORIUM_NODE_ID="node-a", **env).start()
        b = Node(dsn, EMPORIUM_NODE_ID="node-b", **env).start()
        try:
            deadline = time.time() + 10
            while a.metric("emporium_outbox_relay_active") + b.metric("emporium_outbox_relay_active") != 1:
                self.assertLess(time.time(), deadline, "exactly one relay must be active")
                time.sleep(0.1)
            active, standby = (a, b) if a.metric("emporium_outbox_relay_active") == 1 else (b, a)
            seq = collections.Counter()

            def push(node, n):
                for i in range(n):
                    sku = "FO%d" % (i % 5)
                    seq[sku] += 1
                    # The two nodes are a cluster: right after the kill, a key the dead node
                    # owned answers 503 until its lease lapses, and a client retries. A push
                    # that was in flight to the dead node has an unknown outcome: its
                    # connection closes unanswered, and the retry (same seq) is safe.
                    deadline = time.time() + 10
                    while True:
                        try:
                            st, body, _ = node.request("PUT", "/v1/warehouses/w1/stock/" + sku,
                                                       {"on_hand": seq[sku], "seq": seq[sku]}, WH1)
                        except OSError as e:
                            st, body = -1, repr(e)
                        if st not in (503, -1) or time.time() > deadline:
                            break
                        time.sleep(0.1)
                    self.assertEqual(st, 200, body)

            push(active, 300)
            active.kill()  # likely mid-round: some events produced but not yet marked
            push(standby, 50)
            wait_published(standby, dsn)
            self.assertEqual(standby.metric("emporium_outbox_relay_active"), 1)
            self.assertEqual(len(committed_events(dsn)), 350)
            self.check_delivered(dsn, consume(kafka.bootstrap, ["inventory"], idle_ms=3000))
        finally:
            for n in (a, b):
                if n.proc:
                    n.stop()
            kafka.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
