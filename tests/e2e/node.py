"""Starts a real emporium node against the test PostgreSQL, for end-to-end tests."""
import atexit
import http.client
import json
import os
import random
import socket
import subprocess
import tempfile
import time

BIN = os.environ.get("EMPORIUM_BIN", "build/emporium")
PG = os.environ["EMPORIUM_TEST_PG"]  # postgresql://user@host:port/db
SECRET = "e2e-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(dsn, sql):
    out = subprocess.run(["psql", dsn, "-tAc", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def fresh_database():
    """A new empty database on the test server; returns its URL."""
    name = "e2e_%d_%d" % (os.getpid(), random.randrange(1 << 30))
    psql(PG, "CREATE DATABASE %s" % name)
    return PG.rsplit("/", 1)[0] + "/" + name


def token(sub, role, wh=None, ttl=3600):
    args = [BIN, "token", "--sub", sub, "--role", role, "--ttl", str(ttl)]
    if wh:
        args += ["--wh", ",".join(wh)]
    env = dict(os.environ, EMPORIUM_JWT_SECRET=SECRET)
    return subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout.strip()


def forge(claims, secret=SECRET, alg="HS256"):
    """A JWT with arbitrary claims (expired ones, other algs), signed in Python."""
    import base64, hashlib, hmac
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = enc(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = enc(json.dumps(claims).encode())
    sig = enc(hmac.new(secret.encode(), (head + "." + body).encode(), hashlib.sha256).digest())
    return head + "." + body + "." + sig


def raw(port, data, read=4096):
    """Sends raw bytes and returns what the server answers before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(read)
            if not chunk:
                return out
            out += chunk
            if b"\r\n\r\n" in out and b"Content-Length" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    return out


_children = []


def spawn(args, **kw):
    """Popen that is killed when the test process exits, however it exits: an
    orphan holding the test's output pipe would keep ctest waiting forever."""
    proc = subprocess.Popen(args, **kw)
    _children.append(proc)
    return proc


@atexit.register
def _kill_children():
    for proc in _children:
        if proc.poll() is None:
            proc.kill()


class Node:
    def __init__(self, dsn, **env):
        self.dsn = dsn
        self.port = free_port()
        self.cluster_port = free_port()
        self.extra = env
        self.proc = None

    def start(self):
        env = dict(os.environ, EMPORIUM_PG=self.dsn, EMPORIUM_HTTP="127.0.0.1:%d" % self.port,
                   EMPORIUM_JWT_SECRET=SECRET, EMPORIUM_KAFKA="embedded",
                   EMPORIUM_LOG_FORMAT="text", SPDLOG_LEVEL="warn",
                   EMPORIUM_CLUSTER="127.0.0.1:%d" % self.cluster_port,
                   # Rate limits off unless a test sets them (limits_test does):
                   # the other suites drive one customer or one IP at load.
                   EMPORIUM_RATE_LIMIT_PUBLIC="0", EMPORIUM_RATE_LIMIT_CUSTOMER="0")
        env.update(self.extra)
        self.out = tempfile.TemporaryFile(mode="w+")
        self.proc = spawn([BIN, "serve"], env=env, stdout=self.out)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("node did not start")

    def wait_ready(self, timeout=30):
        """Until /readyz is 200 (PostgreSQL answers and the node holds its shards)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.request("GET", "/readyz")[0] == 200:
                return self
            time.sleep(0.05)
        raise RuntimeError("node not ready within %s s" % timeout)

    def kafka_bootstrap(self):
        """The embedded broker's address, as the node printed it."""
        self.out.seek(0)
        for line in self.out:
            if line.startswith("embedded Kafka"):
                return line.rsplit(" ", 1)[1].strip()
        raise RuntimeError("the node printed no embedded Kafka address")

    def metric(self, name):
        """The value of an unlabelled series in /metrics."""
        st, text, _ = self.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)

    def kill(self):
        """SIGKILL: a crash, nothing flushed."""
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None
        self.out.close()

    def stop(self):
        if self.proc:
            self.proc.terminate()
            code = self.proc.wait(timeout=30)
            self.proc = None
            self.out.close()
            return code

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method, path, body=None, tok=None, headers=None, conn=None):
        c = conn or self.conn()
        h = dict(headers or {})
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode()
        return r.status, parsed, r


class FakeProvider:
    """The project's fake payment provider (`emporium fake-provider`) as a process."""

    def __init__(self, name="fake", **settings):
        self.port = free_port()
        self.name = name
        self.settings = settings
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        args = [BIN, "fake-provider", "--listen", "127.0.0.1:%d" % self.port, "--name", self.name]
        for k, v in self.settings.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.proc = spawn(args, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.ledger()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fake provider did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def _call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        r = c.getresponse()
        data = json.loads(r.read())
        c.close()
        return data

    def configure(self, **settings):
        return self._call("POST", "/admin/config", settings)

    def ledger(self):
        return self._call("GET", "/admin/ledger")


KAFKA_TOOL = os.environ.get("EMPORIUM_KAFKA_TOOL", "build/tests/kafka_tool")


def consume(bootstrap, topics, count=None, idle_ms=3000):
    """Every message of the topics from the beginning, as dicts
    {topic, partition, offset, key, value}, read by a librdkafka consumer."""
    args = [KAFKA_TOOL, "consume", "--bootstrap", bootstrap, "--topics", ",".join(topics),
            "--idle-ms", str(idle_ms)]
    if count is not None:
        args += ["--count", str(count)]
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines()]


class MockKafka:
    """librdkafka's mock cluster in its own process, which tests can take down
    and bring back up; a node reaches it as it would a real cluster."""

    def __init__(self, brokers=3):
        self.proc = spawn([KAFKA_TOOL, "mock", "--brokers", str(brokers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line[0] == "bootstrap", line
        self.bootstrap = line[1]

    def _say(self, what):
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def down(self):
        self._say("down")

    def up(self):
        self._say("up")

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


WS_TOOL = os.environ.get("EMPORIUM_WS_TOOL", "build/tests/ws_tool")


class WsClient:
    """A Beast WebSocket client (`ws_tool client`): send() frames, recv() them
    as parsed JSON. `state` is "open", or "refused STATUS BODY"."""

    def __init__(self, port, path, tok=None):
        args = [WS_TOOL, "client", "--port", str(port), "--path", path]
        if tok:
            args += ["--token", tok]
        self.proc = spawn(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        self.state = self._line(10)

    def _line(self, timeout):
        """The next stdout line, or None on timeout (no buffering behind select)."""
        import select
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return "closed eof"
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().strip()

    def send(self, frame):
        if not isinstance(frame, str):
            frame = json.dumps(frame)
        self.proc.stdin.write((frame + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout=10):
        """The next frame as JSON; "closed CODE" as a string; None on timeout."""
        line = self._line(timeout)
        if line is None or line.startswith("closed"):
            return line
        return json.loads(line)

    def recv_until(self, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            frame = self.recv(max(0.01, deadline - time.time()))
            if frame is None or isinstance(frame, str):
                return frame
            if pred(frame):
                return frame
        return None

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


def ws_tool(*args, timeout=300):
    """Runs a ws_tool load mode and returns its JSON summary."""
    out = subprocess.run([WS_TOOL] + [str(a) for a in args], check=True, capture_output=True,
                         text=True, timeout=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])
