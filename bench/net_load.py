"""Load for bench/net_server.sh (standard library only).

  net_load.py seed URL KEY N         POST N ordinary connections (last ~2 h) in one batch
  net_load.py batch URL KEY SECONDS  batches of 1,000 records, 4 in flight, for SECONDS;
                                     prints "records_per_s requests scored
                                     rejected anomalies status:count,…"
"""
import datetime as dt
import http.client
import json
import random
import re
import sys
import threading
import time
import urllib.parse

HOSTS = ["ws-%d" % i for i in range(1, 9)]
# (process, remotes it talks to, port, protocol, median bytes sent / received)
PROFILES = [
    ("chrome.exe", ["203.0.113.%d" % i for i in range(1, 13)], 443, "TCP", 2_000, 40_000),
    ("chrome.exe", ["198.51.100.%d" % i for i in range(1, 5)], 80, "TCP", 800, 15_000),
    ("firefox.exe", ["203.0.113.%d" % i for i in range(5, 17)], 443, "TCP", 1_800, 30_000),
    ("outlook.exe", ["52.96.0.%d" % i for i in range(1, 5)], 443, "TCP", 6_000, 20_000),
    ("OneDriveUpdater.exe", ["13.107.4.50", "13.107.4.52"], 443, "TCP", 1_500, 200_000),
    ("svchost.exe", ["192.168.1.1", "8.8.8.8"], 53, "UDP", 70, 180),
]
WEIGHTS = [40, 8, 20, 12, 3, 17]


def record(rng, ts, hosts):
    k = rng.choices(range(len(PROFILES)), WEIGHTS)[0]
    proc, remotes, port, proto, sent, recv = PROFILES[k]
    h = HOSTS.index(rng.choice(hosts))
    return {
        "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "host": HOSTS[h], "process_id": 1000 + 37 * h + k,
        "process_name": proc, "local_ip": "192.168.1.%d" % (100 + h),
        "remote_ip": rng.choice(remotes), "remote_port": port, "protocol": proto,
        "bytes_sent": int(rng.lognormvariate(0, 0.8) * sent),
        "bytes_received": int(rng.lognormvariate(0, 1.0) * recv),
        "duration": round(rng.lognormvariate(0, 1.2) * (0.05 if proto == "UDP" else 4.0), 3),
    }


def records(rng, n, span_s, end=None, hosts=HOSTS):
    """n records with irregular (exponential) gaps over span_s seconds before end (now)."""
    gaps = [rng.expovariate(1.0) for _ in range(n)]
    scale = span_s / sum(gaps)
    t, out = end or dt.datetime.now(dt.timezone.utc), []
    for g in gaps:
        t -= dt.timedelta(seconds=g * scale)
        out.append(record(rng, t, hosts))
    return out[::-1]


def post(conn, key, path, body):
    conn.request("POST", path, body, {"Content-Type": "application/json",
                                      "Authorization": "Bearer " + key})
    r = conn.getresponse()
    return r.status, r.read(), r.getheader("Retry-After")


def seed(url, key, n):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    body = json.dumps({"records": records(random.Random(2), n, 7200)}).encode()
    status, out, _ = post(conn, key, "/api/v1/network/analyze/batch", body)
    if status != 200:
        sys.exit("seed: HTTP %d %s" % (status, out[:300]))
    d = json.loads(out)
    print("seeded %d records (%d scored, %d rejected)" % (n, d["scored"], d["rejected"]), file=sys.stderr)


def batch(url, key, seconds, inflight=4, size=1000):
    # Ordinary traffic at the seed's density per host (1,000 records per 80 min for two
    # hosts) from tomorrow 00:00 on. Each client sends its own two hosts in time order, as
    # agents do (interleaving one host's records out of order would look anomalous): 18
    # bodies tile one day, and each pass over them moves their date one day on.
    u = urllib.parse.urlsplit(url)
    rng = random.Random(3)
    day0 = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0)
    per_day = 18
    span = 86400 // per_day
    hosts = [HOSTS[2 * w:2 * w + 2] for w in range(inflight)]
    bodies = [[json.dumps({"records": records(rng, size, span, day0 + dt.timedelta(seconds=span * (k + 1)), hosts[w])},
                          separators=(",", ":")).encode() for k in range(per_day)] for w in range(inflight)]
    tag = lambda d: b'"timestamp":"' + d.strftime("%Y-%m-%dT").encode()
    scored, rejected, anomalies, codes = [0], [0], [0], {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(w):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        j = 0
        while time.monotonic() < deadline:
            body = bodies[w][j % per_day]
            if j >= per_day:
                body = body.replace(tag(day0), tag(day0 + dt.timedelta(days=j // per_day)))
            try:
                status, out, retry = post(conn, key, "/api/v1/network/analyze/batch", body)
            except OSError as e:  # a timeout or a dropped connection: count it, reconnect
                status, out, retry = type(e).__name__, b"", None
                conn.close()
            m = re.search(rb'"scored":(\d+)', out) if status == 200 else None
            n = int(m.group(1)) if m else 0
            a = re.search(rb'"anomalies":(\d+)', out) if status == 200 else None
            with lock:
                codes[status] = codes.get(status, 0) + 1
                scored[0] += n
                anomalies[0] += int(a.group(1)) if a else 0
                rejected[0] += size - n if status == 200 else 0
            if status in (429, 503):  # the writer is behind: back off as told, then resend
                time.sleep(max(0.0, min(float(retry or 1), deadline - time.monotonic())))
            else:
                j += 1

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(inflight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print("%.0f %d %d %d %d %s" % (scored[0] / elapsed, sum(codes.values()), scored[0], rejected[0], anomalies[0],
                             ",".join("%s:%d" % kv for kv in sorted(codes.items(), key=str))))


if __name__ == "__main__":
    cmd, url, key, arg = sys.argv[1:5]
    {"seed": seed, "batch": batch}[cmd](url, key, int(arg))
