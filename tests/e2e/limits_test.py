"""The contract's limits against a real node: token buckets per client (429 with
Retry-After, nothing changed, one client never slowing another), trusted
proxies, the in-flight cap under a flood (503 at once, nothing changed, memory
bounded), the connection cap, and a token's expiry on both WebSockets."""
import os
import re
import socket
import subprocess
import threading
import time
import unittest

from node import Node, WsClient, forge, fresh_database, token

LOADGEN = os.environ.get("EMPORIUM_LOADGEN", "build/bench/loadgen")
OPS = token("ops-1", "ops")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_until_closed(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_one_response(sock):
    """One HTTP response on a kept-alive connection (headers and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("closed before a response: %r" % data)
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def loadgen(port, *args):
    out = subprocess.run([LOADGEN, "--port", str(port)] + [str(a) for a in args], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    statuses = dict((int(k), int(v)) for k, v in re.findall(r"(\d+):(\d+)", out.split("statuses=")[1]))
    errors = int(re.search(r"errors=(\d+)", out).group(1))
    return statuses, errors


def stock(n, sku):
    st, body, _ = n.request("GET", "/v1/warehouses/w1/stock/" + sku, tok=OPS)
    assert st == 200, (st, body)
    return body


def put_stock(n, sku, on_hand):
    st, body, _ = n.request("PUT", "/v1/warehouses/w1/stock/" + sku, {"on_hand": on_hand, "seq": 1}, tok=OPS)
    assert st == 200, (st, body)


def reserve(n, tok, sku="RL1", headers=None):
    return n.request("POST", "/v1/reservations", {"sku": sku, "quantity": 1, "warehouse": "w1"},
                     tok=tok, headers=headers)


class RateLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(fresh_database(), EMPORIUM_RATE_LIMIT_CUSTOMER="1:5",
                        EMPORIUM_RATE_LIMIT_PUBLIC="1:5",
                        EMPORIUM_TRUSTED_PROXIES="127.0.0.2").start()
        put_stock(cls.node, "RL1", 1000)

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()

    def test_a_customer_over_its_burst_gets_429_and_nothing_changes_and_others_go_on(self):
        n = self.node
        a, b = token("cust-a", "customer"), token("cust-b", "customer")
        before = stock(n, "RL1")["reserved"]
        answers = [reserve(n, a) for _ in range(8)]
        codes = [st for st, _, _ in answers]
        self.assertEqual(codes.count(201), 5, codes)
        limited = [(body, r) for st, body, r in answers if st == 429]
        self.assertEqual(len(limited), 3, codes)
        for body, r in limited:
            self.assertEqual(body["error"], "rate_limited")
            self.assertGreaterEqual(int(r.getheader("Retry-After")), 1)
        # another customer has its own bucket, right now
        self.assertEqual(reserve(n, b)[0], 201)
        self.assertEqual(stock(n, "RL1")["reserved"], before + 6)  # the 429s changed nothing
        # served again after Retry-After
        time.sleep(int(limited[-1][1].getheader("Retry-After")))
        self.assertEqual(reserve(n, a)[0], 201)

    def test_ops_and_warehouse_tokens_are_not_limited(self):
        wh = token("wh-1", "warehouse", wh=["w1"])
        for _ in range(12):
            self.assertEqual(self.node.request("GET", "/v1/warehouses/w1/stock/RL1", tok=OPS)[0], 200)
            self.assertEqual(self.node.request("GET", "/v1/warehouses/w1/stock/RL1", tok=wh)[0], 200)

    def test_without_a_token_the_client_is_its_address_and_a_bad_token_counts_there(self):
        # 127.0.0.3 is nobody's proxy: whatever X-Forwarded-For it sends, it is one client
        codes = [self._public_from("127.0.0.3", {"X-Forwarded-For": "198.51.100.%d" % i})
                 for i in range(7)]
        self.assertEqual(codes.count(429), 2, codes)
        # a forged token is not a way around it: it is charged to the address, then refused
        st = self._from("127.0.0.3", "GET", "/v1/orders/o1", {"Authorization": "Bearer " + forge(
            {"sub": "x", "role": "customer", "exp": int(time.time()) + 60}, secret="guess")})
        self.assertEqual(st, 429)
        self.assertEqual(self._public_from("127.0.0.4", {}), 200)  # another address, another bucket

    def test_behind_a_trusted_proxy_the_client_is_the_last_untrusted_forwarded_address(self):
        codes = [self._public_from("127.0.0.2", {"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
                 for _ in range(6)]
        self.assertEqual(codes.count(429), 1, codes)
        # the proxy itself, and another client behind it, are other buckets
        self.assertEqual(self._public_from("127.0.0.2", {"X-Forwarded-For": "203.0.113.7, 198.51.100.10"}), 200)
        self.assertEqual(self._public_from("127.0.0.2", {}), 200)

    def test_health_readiness_and_metrics_are_never_limited_and_429s_are_counted(self):
        for _ in range(12):
            self.assertEqual(self._from("127.0.0.5", "GET", "/healthz", {}), 200)
        st, text, _ = self.node.request("GET", "/metrics")
        self.assertIn("emporium_rate_limited_total{class=\"customer\"}", text)
        self.assertIn("emporium_rate_limited_total{class=\"public\"}", text)

    def _public_from(self, source, headers):
        return self._from(source, "GET", "/v1/stock/RL1", headers)

    def _from(self, source, method, path, headers):
        """One request from the local address `source` (127.0.0.0/8 is all ours)."""
        s = socket.create_connection(("127.0.0.1", self.node.port), timeout=10, source_address=(source, 0))
        try:
            head = "".join("%s: %s\r\n" % kv for kv in headers.items())
            s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n" % (method, path, head)).encode())
            return int(read_until_closed(s).split(b" ", 2)[1])
        finally:
            s.close()


class Overload(unittest.TestCase):
    def test_a_flood_over_the_in_flight_cap_gets_503_changes_nothing_and_memory_stays_bounded(self):
        n = Node(fresh_database(), EMPORIUM_MAX_INFLIGHT="16", EMPORIUM_RATE_LIMIT_CUSTOMER="0").start()
        try:
            put_stock(n, "FLOOD", 10 ** 9)
            tok = token("flood", "customer")
            body = '{"sku":"FLOOD","quantity":1,"warehouse":"w1"}'
            args = ["--method", "POST", "--path", "/v1/reservations", "--header",
                    "Authorization: Bearer " + tok, "--body", body]
            warm, _ = loadgen(n.port, "--connections", 32, "--duration", 1, *args)  # actors and pages
            rss0 = rss_kib(n.proc.pid)
            statuses, errors = loadgen(n.port, "--connections", 600, "--duration", 4, *args)
            rss1 = rss_kib(n.proc.pid)
            self.assertEqual(errors, 0, statuses)
            self.assertEqual(set(statuses) - {201, 503}, set(), statuses)
            self.assertGreater(statuses.get(503, 0), 0, statuses)
            self.assertGreater(statuses.get(201, 0), 0, statuses)
            # nothing a 503 answered changed anything: the warm-up's and the flood's 201s only
            self.assertEqual(stock(n, "FLOOD")["reserved"], warm.get(201, 0) + statuses[201])
            st, text, _ = n.request("GET", "/metrics")
            shed = float(re.search(r'emporium_shed_total\{reason="inflight"\} (\S+)', text).group(1))
            self.assertEqual(shed, warm.get(503, 0) + statuses[503])
            self.assertLess(rss1 - rss0, 64 * 1024, "RSS grew %d KiB under the flood" % (rss1 - rss0))
        finally:
            n.stop()

    def test_a_connection_over_the_cap_gets_503_and_is_closed_and_a_freed_slot_serves_again(self):
        n = Node(fresh_database(), EMPORIUM_MAX_CONNECTIONS="4").start()
        try:
            # each held connection is proven accepted (and counted) by one answered
            # keep-alive request, so the fifth is over the cap however slow the machine
            held = [socket.create_connection(("127.0.0.1", n.port), timeout=10) for _ in range(4)]
            for s in held:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = read_one_response(s)
                self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
            extra = socket.create_connection(("127.0.0.1", n.port), timeout=10)
            data = read_until_closed(extra)
            extra.close()
            self.assertTrue(data.startswith(b"HTTP/1.1 503"), data)
            self.assertIn(b"Retry-After: 1", data)
            held.pop().close()
            deadline = time.time() + 5
            while True:  # the freed slot is given back once the node sees the close
                try:
                    if n.request("GET", "/healthz")[0] == 200:
                        break
                except (OSError, ValueError):
                    pass
                self.assertLess(time.time(), deadline, "a freed slot did not serve again")
                time.sleep(0.05)
            for s in held:
                s.close()
        finally:
            n.stop()


class WebSockets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node(fresh_database()).start()
        put_stock(cls.node, "EXP1", 10)

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()

    def test_the_warehouse_push_ends_when_its_token_expires_and_nothing_after_is_applied(self):
        tok = token("wh-exp", "warehouse", wh=["w1"], ttl=2)
        ws = WsClient(self.node.port, "/v1/warehouses/w1/ws", tok)
        self.assertEqual(ws.state, "open")
        ws.send({"sku": "EXP1", "on_hand": 20, "seq": 2})
        self.assertEqual(ws.recv()["ack"], 2)
        self.assertEqual(ws.recv(timeout=5), "closed 1008")  # at exp, without a frame from us
        ws.close()
        self.assertEqual(stock(self.node, "EXP1")["on_hand"], 20)

    def test_a_batch_frame_over_the_in_flight_cap_is_refused_whole_and_smaller_ones_all_land(self):
        tok = token("wh-batch", "warehouse", wh=["w1"])
        ws = WsClient(self.node.port, "/v1/warehouses/w1/ws", tok)
        self.assertEqual(ws.state, "open")
        too_many = [{"sku": "BIG%d" % i, "on_hand": 1, "seq": 1} for i in range(1025)]
        ws.send({"batch": too_many})
        frame = ws.recv()
        self.assertEqual(frame["error"], "too_large", frame)
        # two batches of 1 000 back to back: item by item under the cap, every one acked
        for b in range(2):
            ws.send({"batch": [{"sku": "B%d_%d" % (b, i), "on_hand": 3, "seq": 1} for i in range(1000)]})
        acks = 0
        while acks < 2000:
            frame = ws.recv(timeout=30)
            self.assertIsInstance(frame, dict, frame)
            self.assertIn("ack", frame)
            acks += 1
        ws.close()
        self.assertEqual(self.node.request("GET", "/v1/stock/BIG0")[0], 404)  # nothing applied
        self.assertEqual(self.node.request("GET", "/v1/stock/B1_999")[0], 200)

    def test_the_storefront_session_of_a_token_ends_when_it_expires(self):
        tok = token("cust-exp", "customer", ttl=2)
        ws = WsClient(self.node.port, "/v1/ws", tok)
        self.assertEqual(ws.state, "open")
        ws.send({"op": "subscribe", "topic": "stock", "sku": "EXP1"})
        self.assertEqual(ws.recv()["sku"], "EXP1")
        self.assertEqual(ws.recv_until(lambda f: False, timeout=5), "closed 1008")
        ws.close()
        # a session without a token has no expiry
        anon = WsClient(self.node.port, "/v1/ws")
        anon.send({"op": "subscribe", "topic": "stock", "sku": "EXP1"})
        self.assertEqual(anon.recv()["sku"], "EXP1")
        anon.close()


if __name__ == "__main__":
    unittest.main()
