"""Relay throughput: N synthetic committed events (1 000 aggregates) are put
into the outbox at once; the node's relay drains them to its Kafka (the
embedded broker in `make bench`). Prints relay_eps=... (events/s from the
insert to the last delivery report being marked)."""
import http.client
import subprocess
import sys
import time

port, pg, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])


def published():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        if line.startswith("emporium_outbox_published_total "):
            return float(line.split()[1])
    return 0.0


# Wait for the relay to catch up with whatever the earlier steps wrote.
while subprocess.run(["psql", pg, "-tAc", "SELECT count(*) FROM outbox_pending"],
                     capture_output=True, text=True).stdout.strip() != "0":
    time.sleep(0.2)
before = published()
sql = ("INSERT INTO events (event_id, aggregate_type, aggregate_id, event_version, event_type, "
       "event_time, data, metadata) SELECT gen_random_uuid(), 'stock', 'RELAY' || (i %% 1000) || '@w1', "
       "i / 1000 + 1, 'stock_adjusted', now(), jsonb_build_object('delta', 1, 'sku', 'RELAY' || (i %% 1000)), "
       "jsonb_build_object('correlationId', 'bench', 'causationId', '', 'userId', 'bench', 'node', 'bench') "
       "FROM generate_series(0, %d) AS i" % (n - 1))
start = time.time()
subprocess.run(["psql", pg, "-qc", sql], check=True)
while published() < before + n:
    time.sleep(0.05)
secs = time.time() - start
print("relay events=%d seconds=%.2f relay_eps=%.0f" % (n, secs, n / secs))
