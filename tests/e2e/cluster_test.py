"""The cluster end to end: three (or four) real node processes on loopback sharing one real
PostgreSQL, talking over CAF's middleman. Any node serves any key; shards move on join, drain
and death; a paused old owner commits nothing and serves nothing stale."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from node import Node, WsClient, forge, fresh_database, psql

OPS = forge({"sub": "ops", "role": "ops", "exp": int(time.time()) + 7200})
WH = forge({"sub": "wh", "role": "warehouse", "wh": ["w1"], "exp": int(time.time()) + 7200})


def customer(i):
    return forge({"sub": "c%d" % i, "role": "customer", "exp": int(time.time()) + 7200})


class Cluster:
    """n nodes on one fresh database; the first is every other's seed."""

    def __init__(self, n=3, **env):
        self.dsn = fresh_database()
        self.env = env
        self.nodes = []
        for i in range(n):
            self.add()

    def add(self, **extra):
        i = len(self.nodes) + 1
        env = dict(self.env, EMPORIUM_NODE_ID="n%d" % i, **extra)
        if self.nodes:
            env["EMPORIUM_SEEDS"] = "127.0.0.1:%d" % self.nodes[0].cluster_port
        node = Node(self.dsn, **env).start()
        self.nodes.append(node)
        return node

    def wait_ready(self, nodes=None, timeout=20):
        deadline = time.time() + timeout
        for n in nodes or self.live():
            while n.request("GET", "/readyz")[0] != 200:
                if time.time() > deadline:
                    raise AssertionError("node not ready: %s" % n.extra["EMPORIUM_NODE_ID"])
                time.sleep(0.05)

    def live(self):
        return [n for n in self.nodes if n.proc]

    def by_id(self, node_id):
        return [n for n in self.nodes if n.extra["EMPORIUM_NODE_ID"] == node_id][0]

    def owner(self, via, **key):
        q = "&".join("%s=%s" % kv for kv in key.items())
        st, body, _ = via.request("GET", "/v1/cluster/owner?" + q, tok=OPS)
        assert st == 200, body
        return body

    def wait_owner_not(self, node_id, via, timeout=10, **key):
        """Waits until the key is owned by a live node other than node_id; the seconds it took."""
        start = time.time()
        while time.time() - start < timeout:
            o = self.owner(via, **key)
            if o["node"] and o["node"] != node_id:
                return time.time() - start, o
            time.sleep(0.02)
        raise AssertionError("no new owner for %s" % key)

    def stop(self):
        for n in self.live():
            if n.proc.poll() is None:
                try:
                    os.kill(n.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            n.stop()


def stock(node, sku, on_hand, wh="w1"):
    st, body, _ = node.request("PUT", "/v1/warehouses/%s/stock/%s" % (wh, sku),
                               {"on_hand": on_hand, "seq": int(time.time() * 1e6)}, WH)
    assert st == 200, body
    return body


def hammer(nodes, sku, requests, threads=48, qty=1, first_customer=0, stop=None, ttl=None):
    """Reservations of `qty` from distinct customers through `nodes` (round robin over
    threads, keep-alive). Returns a list of (status, body)."""
    out = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker(t):
        node = nodes[t % len(nodes)]
        conn = node.conn()
        while True:
            with lock:
                i = None if stop is not None and stop.is_set() else next(counter, None)
            if i is None:
                conn.close()
                return
            body = {"sku": sku, "quantity": qty, "warehouse": "w1"}
            if ttl:
                body["ttl_s"] = ttl
            try:
                st, res, _ = node.request("POST", "/v1/reservations", body,
                                          customer(first_customer + i), conn=conn)
            except OSError:
                conn = node.conn()
                st, res = -1, None
            with lock:
                out.append((st, res, time.time()))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def held_in_pg(dsn, sku):
    reserved = int(psql(dsn, "SELECT coalesce(sum(reserved), 0) FROM stock_levels WHERE sku = '%s'" % sku))
    rows = psql(dsn, "SELECT reservation_id FROM stock_holds WHERE sku = '%s' AND status = 'held'" % sku)
    return reserved, set(r for r in rows.split("\n") if r)


class ClusterTest(unittest.TestCase):
    def cluster(self, n=3, **env):
        c = Cluster(n, **env)
        self.addCleanup(c.stop)
        c.wait_ready()
        return c

    def test_any_node_serves_any_key_with_the_owners_answers(self):
        c = self.cluster()
        a, b, d = c.nodes
        st, view, _ = a.request("GET", "/v1/cluster", tok=OPS)
        self.assertEqual(st, 200, view)
        self.assertEqual(view["shards"], 1024)
        deadline = time.time() + 5
        while sorted(n["status"] for n in view["nodes"]) != ["up"] * 3 and time.time() < deadline:
            time.sleep(0.05)  # each node shows the others as of its last round
            view = a.request("GET", "/v1/cluster", tok=OPS)[1]
        self.assertEqual(sorted(n["status"] for n in view["nodes"]), ["up"] * 3)
        self.assertEqual(sum(n["shards"] for n in view["nodes"]), 1024)
        self.assertTrue(all(n["shards"] > 200 for n in view["nodes"]), view)
        skus = ["ANY%d" % i for i in range(30)]
        for i, s in enumerate(skus):
            stock(c.nodes[i % 3], s, 10 + i)
        owners = set(c.owner(a, sku=s)["node"] for s in skus)
        self.assertEqual(owners, {"n1", "n2", "n3"}, "the keys are spread")
        for s in skus:
            answers = [n.request("GET", "/v1/stock/" + s)[1] for n in c.nodes]
            self.assertEqual(answers[0], answers[1])
            self.assertEqual(answers[0], answers[2])
        # A reservation made through one node, read and released through the others.
        st, r, _ = a.request("POST", "/v1/reservations", {"sku": "ANY3", "quantity": 2}, customer(1))
        self.assertEqual(st, 201, r)
        st, got, _ = b.request("GET", "/v1/reservations/" + r["reservation_id"], tok=customer(1))
        self.assertEqual((st, got), (200, r))
        st, gone, _ = d.request("DELETE", "/v1/reservations/" + r["reservation_id"], tok=customer(1))
        self.assertEqual((st, gone["status"]), (200, "released"))
        # A cart and an order id map to owners too; an unknown one is a 400.
        self.assertIn(c.owner(b, cart="cart-1")["node"], {"n1", "n2", "n3"})
        self.assertEqual(b.request("GET", "/v1/cluster/owner?sku=bad%20id", tok=OPS)[0], 400)
        self.assertEqual(b.request("GET", "/v1/cluster", tok=customer(1))[0], 403)

    def test_a_stampede_through_three_gateways_holds_exactly_the_stock(self):
        c = self.cluster()
        stock(c.nodes[0], "HOT", 1000)
        started = time.time()
        got = hammer(c.nodes, "HOT", 6000)
        took = time.time() - started
        statuses = [st for st, _, _ in got]
        print("\n  stampede: 6000 reservations over 3 gateways in %.2f s: %d held, %d refused"
              % (took, statuses.count(201), statuses.count(409)))
        self.assertEqual(statuses.count(201), 1000)
        self.assertEqual(statuses.count(409), 5000, set(statuses))
        reserved, rows = held_in_pg(c.dsn, "HOT")
        self.assertEqual((reserved, len(rows)), (1000, 1000))
        acked = set(res["reservation_id"] for st, res, _ in got if st == 201)
        self.assertEqual(acked, rows)

    def test_killing_the_owner_under_load_loses_no_acknowledged_write(self):
        c = self.cluster()
        a = c.nodes[0]
        stock(a, "KILL", 100000)
        owner = c.owner(a, sku="KILL")["node"]
        victim = c.by_id(owner)
        others = [n for n in c.nodes if n is not victim]
        stop = threading.Event()
        result = []
        t = threading.Thread(target=lambda: result.extend(
            hammer(others, "KILL", 100000, threads=16, stop=stop)))
        t.start()
        time.sleep(1.0)
        killed_at = time.time()
        victim.kill()
        rebalance, new = c.wait_owner_not(owner, others[0], sku="KILL")
        time.sleep(1.5)
        stop.set()
        t.join()
        first_ok_after = min((at for st, _, at in result if st == 201 and at > killed_at + 0.05),
                             default=None)
        self.assertIsNotNone(first_ok_after, "reservations succeed again after the kill")
        print("\n  kill -9 of %s: shard owned by %s after %.2f s; reservations served again "
              "after %.2f s" % (owner, new["node"], rebalance, first_ok_after - killed_at))
        statuses = [st for st, _, _ in result]
        self.assertLessEqual(rebalance, 2.5, "rebalance within the lease and a round")
        # -1: closed unanswered (a write in flight to the dead owner: its outcome is unknown)
        self.assertTrue(set(statuses) <= {201, 409, 503, -1}, set(statuses))
        reserved, rows = held_in_pg(c.dsn, "KILL")
        acked = set(res["reservation_id"] for st, res, _ in result if st == 201)
        self.assertTrue(acked <= rows, "every acknowledged reservation is durable")
        self.assertLessEqual(reserved, 100000, "no oversell")
        self.assertEqual(reserved, len(rows))
        unknown = len(rows - acked)
        print("  %d answered 503, %d closed unanswered, %d of those committed"
              % (statuses.count(503), statuses.count(-1), unknown))
        self.assertLessEqual(unknown, statuses.count(-1), "only writes left unanswered (their "
                                                          "outcome unknown) may have committed: "
                                                          "no 503 did")
        # The survivors agree with PostgreSQL.
        for n in others:
            st, body, _ = n.request("GET", "/v1/stock/KILL")
            self.assertEqual(body["warehouses"][0]["reserved"], reserved)

    def test_holds_of_a_dead_owner_expire_on_the_new_owner_unasked(self):
        c = self.cluster()
        a, b, _ = c.nodes
        sku = [s for s in ("EXP%d" % i for i in range(400)) if c.owner(b, sku=s)["node"] == "n1"][0]
        stock(b, sku, 10)
        st, r, _ = b.request("POST", "/v1/reservations",
                             {"sku": sku, "quantity": 3, "warehouse": "w1", "ttl_s": 2}, customer(9))
        self.assertEqual(st, 201, r)
        a.kill()
        c.wait_owner_not("n1", b, sku=sku)
        # Nobody asks for the SKU: the node that took its shard loads it and its expiry
        # timer releases the hold.
        reserved = lambda: int(psql(c.dsn, "SELECT reserved FROM stock_levels WHERE sku = '%s'" % sku))
        deadline = time.time() + 8
        while reserved() != 0 and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(reserved(), 0, "the hold expired on the new owner")
        status = psql(c.dsn, "SELECT status FROM stock_holds WHERE reservation_id = '%s'"
                      % r["reservation_id"])
        self.assertEqual(status, "expired")

    def test_a_paused_owner_commits_nothing_and_serves_nothing_stale(self):
        c = self.cluster()
        a, b, _ = c.nodes
        on_n1 = [s for s in ("PAUSE%d" % i for i in range(400)) if c.owner(a, sku=s)["node"] == "n1"]
        quiet, changed = on_n1[0], on_n1[1]
        # `quiet` has a hold that expires while n1 is stopped, and nobody touches it meanwhile:
        # only the epoch check stops n1's expiry timer from committing when it wakes up.
        # `changed` is changed by its new owner meanwhile: n1 must not answer its old level.
        for s in (quiet, changed):
            stock(a, s, 10)
        st, r, _ = a.request("POST", "/v1/reservations",
                             {"sku": quiet, "quantity": 2, "warehouse": "w1", "ttl_s": 2}, customer(7))
        self.assertEqual(st, 201, r)
        self.assertEqual(a.request("GET", "/v1/stock/" + changed)[1]["available"], 10)
        by_n1 = ("SELECT count(*) FROM events WHERE aggregate_id IN ('%s@w1', '%s@w1') "
                 "AND metadata->>'node' = 'n1'" % (quiet, changed))
        before = psql(c.dsn, by_n1)
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            took, new = c.wait_owner_not("n1", b, sku=quiet)
            c.wait_owner_not("n1", b, sku=changed)
            stock(b, changed, 33)
            time.sleep(2.5)  # the hold's expiry passes while n1 sleeps
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        time.sleep(1.5)  # n1's expiry timer fires now, under its old epoch
        self.assertEqual(psql(c.dsn, by_n1), before,
                         "the old owner committed nothing after its lease lapsed")
        # The old owner answers what the new owner has, for both.
        self.assertEqual(a.request("GET", "/v1/stock/" + changed)[1]["available"], 33)
        b.request("GET", "/v1/stock/" + quiet)  # the new owner recovers it, expiring the hold
        deadline = time.time() + 5
        while a.request("GET", "/v1/stock/" + quiet)[1]["available"] != 10 and time.time() < deadline:
            time.sleep(0.05)
        answers = [n.request("GET", "/v1/stock/" + quiet)[1] for n in c.nodes]
        self.assertEqual([x["available"] for x in answers], [10, 10, 10], answers)
        st, hold, _ = a.request("GET", "/v1/reservations/" + r["reservation_id"], tok=customer(7))
        self.assertEqual(hold["status"], "expired", hold)
        fenced = a.metric("emporium_fenced_writes_total")
        print("\n  SIGSTOP of n1 for %.1f s: shards taken after %.2f s; n1 fenced writes: %d"
              % (took + 2.5, took, fenced))

    def test_draining_a_node_under_load_is_invisible_to_clients(self):
        c = self.cluster()
        a, b, d = c.nodes
        skus = [s for s in ("DR%d" % i for i in range(300)) if c.owner(b, sku=s)["node"] == "n1"][:20]
        for s in skus:
            stock(b, s, 1000000)
        stop = threading.Event()
        errors, done = [], [0]

        def load(node, seed):
            conn = node.conn()
            i = 0
            while not stop.is_set():
                s = skus[(seed + i) % len(skus)]
                st, body, _ = node.request("GET", "/v1/stock/" + s, conn=conn)
                if st != 200:
                    errors.append((st, body))
                st, res, _ = node.request("POST", "/v1/reservations",
                                          {"sku": s, "quantity": 1, "warehouse": "w1"},
                                          customer(seed * 100000 + i), conn=conn)
                if st != 201:
                    errors.append((st, res))
                done[0] += 1
                i += 1
            conn.close()

        ts = [threading.Thread(target=load, args=(n, k)) for k, n in enumerate([b, d, b, d])]
        for t in ts:
            t.start()
        time.sleep(1.0)
        started = time.time()
        st, body, _ = b.request("POST", "/v1/cluster/nodes/n1/drain", tok=OPS)
        self.assertEqual((st, body), (202, {"node": "n1", "status": "draining"}))
        code = a.proc.wait(timeout=30)
        drained = time.time() - started
        a.proc = None
        time.sleep(0.5)
        stop.set()
        for t in ts:
            t.join()
        print("\n  drain of n1 under load: exited %d after %.2f s; %d request pairs, %d errors"
              % (code, drained, done[0], len(errors)))
        self.assertEqual(code, 0)
        self.assertEqual(errors, [])
        st, view, _ = b.request("GET", "/v1/cluster", tok=OPS)
        status = {n["id"]: (n["status"], n["shards"]) for n in view["nodes"]}
        self.assertEqual(status["n1"], ("left", 0))
        self.assertEqual(status["n2"][1] + status["n3"][1], 1024)
        self.assertEqual(b.request("POST", "/v1/cluster/nodes/nope/drain", tok=OPS)[0], 404)

    def test_a_fourth_node_takes_shards_and_serves_their_state_unchanged(self):
        c = self.cluster()
        skus = ["J%d" % i for i in range(40)]
        before = {}
        for i, s in enumerate(skus):
            stock(c.nodes[i % 3], s, 50 + i)
            st, r, _ = c.nodes[(i + 1) % 3].request("POST", "/v1/reservations",
                                                    {"sku": s, "quantity": 1 + i % 3}, customer(i))
            self.assertEqual(st, 201, r)
            before[s] = c.nodes[0].request("GET", "/v1/stock/" + s)[1]
        d = c.add()
        c.wait_ready([d])
        deadline = time.time() + 10
        while time.time() < deadline:
            view = d.request("GET", "/v1/cluster", tok=OPS)[1]
            shards = {n["id"]: n["shards"] for n in view["nodes"]}
            if shards.get("n4", 0) > 150 and sum(shards.values()) == 1024:
                break
            time.sleep(0.1)
        print("\n  after n4 joined: %s" % shards)
        self.assertGreater(shards["n4"], 150)
        moved = [s for s in skus if c.owner(d, sku=s)["node"] == "n4"]
        self.assertTrue(moved, "some of the keys now live on n4")
        for s in skus:
            for n in c.nodes:
                self.assertEqual(n.request("GET", "/v1/stock/" + s)[1], before[s], s)

    def test_a_storefront_subscriber_sees_changes_made_on_another_node(self):
        c = self.cluster()
        a, b, d = c.nodes
        sku = next(s for s in ("WS%d" % i for i in range(200)) if c.owner(a, sku=s)["node"] == "n1")
        stock(a, sku, 5)
        ws = WsClient(d.port, "/v1/ws")
        self.addCleanup(ws.close)
        self.assertEqual(ws.state, "open")
        ws.send({"op": "subscribe", "topic": "stock", "sku": sku})
        self.assertEqual(ws.recv()["available"], 5)
        st, r, _ = b.request("POST", "/v1/reservations", {"sku": sku, "quantity": 2}, customer(3))
        self.assertEqual(st, 201, r)
        f = ws.recv_until(lambda f: isinstance(f, dict) and f.get("available") == 3)
        self.assertEqual(f["sku"], sku)


class ClusterTlsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def ca(self, name):
        key, crt = os.path.join(self.dir, name + ".key"), os.path.join(self.dir, name + ".crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=" + name], check=True, capture_output=True)
        return key, crt

    def cert(self, ca, name):
        ca_key, ca_crt = ca
        key, csr, crt = (os.path.join(self.dir, name + x) for x in (".key", ".csr", ".crt"))
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=" + name],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                        "-CAcreateserial", "-out", crt, "-days", "2"], check=True, capture_output=True)
        return {"EMPORIUM_CLUSTER_CERT": crt, "EMPORIUM_CLUSTER_KEY": key,
                "EMPORIUM_CLUSTER_CA": ca_crt}

    def test_only_peers_with_a_certificate_of_our_ca_get_through(self):
        good, evil = self.ca("cluster-ca"), self.ca("other-ca")
        c = Cluster(0)
        self.addCleanup(c.stop)
        a = c.add(**self.cert(good, "n1"))
        b = c.add(**self.cert(good, "n2"))
        c.wait_ready()
        sku = next(s for s in ("TLS%d" % i for i in range(200)) if c.owner(a, sku=s)["node"] == "n1")
        try:
            stock(b, sku, 4)  # through n2, over TLS, to the owner n1
        except AssertionError:
            b.out.seek(0)
            print(b.out.read()[-3000:])
            raise
        self.assertEqual(b.request("GET", "/v1/stock/" + sku)[1]["available"], 4)
        # A node with another CA's certificate joins the table but reaches no one, and no one
        # reaches it: what it owns is unavailable through the others (503), never wrong.
        m = c.add(**self.cert(evil, "n3"))
        time.sleep(3)
        a.out.seek(0)
        self.assertIn("event=peer_unreachable node=n3", a.out.read())  # n1 dials n3, refused
        owned_by_m = [s for s in ("TLS%d" % i for i in range(400)) if c.owner(a, sku=s)["node"] == "n3"]
        self.assertTrue(owned_by_m)
        st, body, r = a.request("GET", "/v1/stock/" + owned_by_m[0])
        self.assertEqual((st, body["error"]), (503, "unavailable"), body)
        self.assertIsNotNone(r.getheader("Retry-After"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
