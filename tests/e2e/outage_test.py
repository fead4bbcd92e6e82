"""PostgreSQL fails under steady reservation traffic: crashed (pg_ctl stop -m
immediate) and started again, then hung (SIGSTOP of every one of its
processes) and woken. The node runs against a PostgreSQL of this test's own,
so the test can do that to it. Afterwards PostgreSQL holds exactly the
acknowledged reservations; every other answer was 503 with Retry-After."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import node as e2e
from node import Node, free_port, psql, token

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_SH = os.path.join(ROOT, "scripts", "pg.sh")
OPS = token("ops-1", "ops")


class Postgres:
    """A throwaway server (scripts/pg.sh) the test may crash, stop and freeze."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="emporium-outage-")
        self.data = os.path.join(self.dir, "pg")
        self.port = free_port()
        self.url = "postgresql://postgres@127.0.0.1:%d/emporium" % self.port

    def start(self):
        subprocess.run(["bash", PG_SH, "start", self.data, str(self.port)], check=True)

    def crash(self):
        """pg_ctl stop -m immediate: every process quits without a checkpoint."""
        self._pg_ctl("-m", "immediate", "stop")

    def stop(self):
        subprocess.run(["bash", PG_SH, "stop", self.data, str(self.port)], check=False)

    def processes(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            main = int(f.readline())
        kids = subprocess.run(["pgrep", "-P", str(main)], capture_output=True, text=True).stdout.split()
        return [main] + [int(k) for k in kids]

    def signal_all(self, sig):
        for pid in self.processes():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _pg_ctl(self, *args):
        bin_dir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
        cmd = [os.path.join("/usr/lib/postgresql", bin_dir, "bin", "pg_ctl"), "-D", self.data, "-w", *args]
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


class Traffic:
    """Buyers reserving one unit each, on connections of their own, until stopped.
    Every answer is kept: (started, ended, status, reservation_id, Retry-After)."""

    def __init__(self, node, sku, buyers=8):
        self.node, self.sku = node, sku
        self.tokens = [token("buyer-%d" % i, "customer") for i in range(buyers)]
        self.answers = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self._run, args=(t,)) for t in self.tokens]
        for t in self.threads:
            t.start()

    def _run(self, tok):
        conn = None
        while self.running:
            started = time.time()
            try:
                conn = conn or self.node.conn()
                st, body, r = self.node.request("POST", "/v1/reservations",
                                                {"sku": self.sku, "quantity": 1, "ttl_s": 3600}, tok, conn=conn)
                rid = body.get("reservation_id") if st == 201 else None
                answer = (started, time.time(), st, rid, r.getheader("Retry-After"), body)
            except OSError as e:  # not expected: kept, so the test fails showing it
                conn = None
                answer = (started, time.time(), "error", None, None, str(e))
            with self.lock:
                self.answers.append(answer)
            if st != 201:
                time.sleep(0.01)  # a client backs off a little on 503

    def granted_since(self, t):
        with self.lock:
            return sum(1 for a in self.answers if a[2] == 201 and a[0] >= t)

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(timeout=120)
        return self.answers


class Outage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = Postgres()
        cls.pg.start()
        # The contract's readiness and breaker figures; the gateway never times a write out.
        cls.node = Node(cls.pg.url).start()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.pg.signal_all(signal.SIGCONT)
        cls.pg.stop()

    def req(self, *a, **kw):
        return self.node.request(*a, **kw)

    def wait_for(self, pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return time.time()
            time.sleep(0.02)
        self.fail("not within %s s: %s" % (timeout, what))

    def check_exact(self, sku, answers):
        """Every answer 201 or 503 with Retry-After; PostgreSQL holds exactly the 201s."""
        odd = [a for a in answers if a[2] not in (201, 503) or (a[2] == 503 and a[4] != "1")]
        self.assertEqual(odd[:3], [])
        acked = {a[3] for a in answers if a[2] == 201}
        self.assertEqual(len(acked), len([a for a in answers if a[2] == 201]))
        held = set(psql(self.pg.url, "SELECT reservation_id FROM stock_holds WHERE sku = '%s' "
                                     "AND status = 'held'" % sku).split())
        self.assertEqual(len(held - acked), 0, "held but answered 503: %s" % sorted(held - acked)[:3])
        self.assertEqual(len(acked - held), 0, "acknowledged but not held: %s" % sorted(acked - held)[:3])
        self.assertEqual(psql(self.pg.url, "SELECT reserved FROM stock_levels WHERE sku = '%s'" % sku),
                         str(len(acked)))
        st, body, _ = self.req("GET", "/v1/warehouses/w1/stock/" + sku, tok=OPS)
        self.assertEqual((st, body["reserved"]), (200, len(acked)))
        return acked

    def node_log(self):
        self.node.out.flush()
        self.node.out.seek(0)
        return self.node.out.read()

    def test_1_crash_and_restart_under_traffic(self):
        sku = "CRASH1"
        self.assertEqual(self.req("PUT", "/v1/warehouses/w1/stock/" + sku,
                                  {"on_hand": 1000000, "seq": 1}, OPS)[0], 200)
        traffic = Traffic(self.node, sku)
        self.wait_for(lambda: traffic.granted_since(0) >= 50, 20, "reservations before the crash")
        crashed = time.time()
        self.pg.crash()
        self.wait_for(lambda: self.req("GET", "/readyz")[0] == 503, 5, "/readyz 503 after the crash")
        time.sleep(1.5)
        self.pg.start()
        restarted = time.time()
        self.wait_for(lambda: traffic.granted_since(restarted) >= 50, 30, "reservations after the restart")
        answers = traffic.stop()
        acked = self.check_exact(sku, answers)
        refused = [a for a in answers if a[2] == 503]
        self.assertGreater(len(refused), 0)
        self.assertNotIn("stock_diverged", self.node_log())
        print("\n  crash: %d answers, %d granted, %d x 503; PostgreSQL back after %.1f s; "
              "first 201 after restart in %.2f s" % (
                  len(answers), len(acked), len(refused), restarted - crashed,
                  min(a[1] for a in answers if a[2] == 201 and a[0] >= restarted) - restarted),
              file=sys.stderr)

    def test_2_hung_server_answers_503_quickly_and_recovers_after_sigcont(self):
        sku = "HUNG1"
        self.assertEqual(self.req("PUT", "/v1/warehouses/w1/stock/" + sku,
                                  {"on_hand": 1000000, "seq": 1}, OPS)[0], 200)
        self.wait_for(lambda: self.req("GET", "/readyz")[0] == 200, 10, "ready")
        traffic = Traffic(self.node, sku)
        self.wait_for(lambda: traffic.granted_since(0) >= 50, 20, "reservations before the hang")
        stopped = time.time()
        self.pg.signal_all(signal.SIGSTOP)
        try:
            not_ready = self.wait_for(lambda: self.req("GET", "/readyz")[0] == 503, 5, "/readyz 503 while hung")
            time.sleep(3)
            self.assertEqual(self.req("GET", "/healthz")[0], 200)
            # Cached reads keep answering: a pair's last durable level.
            st, body, _ = self.req("GET", "/v1/warehouses/w1/stock/" + sku, tok=OPS)
            self.assertEqual(st, 200, body)
            self.assertGreater(body["reserved"], 0)
        finally:
            woken = time.time()
            self.pg.signal_all(signal.SIGCONT)
        self.wait_for(lambda: traffic.granted_since(woken) >= 50, 30, "reservations after SIGCONT")
        answers = traffic.stop()
        self.check_exact(sku, answers)
        # Requests sent while it was hung (after the first second) were refused within 2 s each.
        during = [a for a in answers if stopped + 1.0 <= a[0] and a[1] <= woken]
        self.assertGreater(len(during), 0)
        slow = [a for a in during if a[2] != 503 or a[1] - a[0] > 2.0]
        self.assertEqual(slow[:3], [])
        # Those whose commit was under way when it froze waited for the definite outcome.
        straddling = [a for a in answers if a[0] < woken and a[1] > woken]
        print("\n  SIGSTOP of PostgreSQL for %.1f s: /readyz 503 after %.2f s; %d requests while hung, "
              "slowest %.0f ms, all 503; %d in flight at the freeze answered after SIGCONT (%d x 201)" % (
                  woken - stopped, not_ready - stopped, len(during),
                  1000 * max(a[1] - a[0] for a in during), len(straddling),
                  len([a for a in straddling if a[2] == 201])),
              file=sys.stderr)
        self.assertNotIn("stock_diverged", self.node_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
