#!/usr/bin/env python3
"""Replays two attacks of the outside review (issue 22) against a running `vigil serve` and
prints what they did to it, so that a build before the fix and one after can be compared
side by side (docs/benchmarks.md, "Review attacks").

    python3 bench/review_attacks.py --url http://127.0.0.1:8080 --key vgl_... --pid PID

1. metric labels: N requests with distinct 8 KB methods on a matched route and N distinct
   unmatched paths; /metrics size and the server's RSS before and after.
2. body budget: one connection claiming 1 GiB on /api/v1/events, then three stalled
   200 MiB /api/v1/evtx uploads with one agent key (and three with three keys); whether
   another client's ingest still gets in, and when the stalled uploads are answered.

Standard library only. The Rhai attack (finding 5) has its own before/after test:
`cargo test -p vigil --test script_memory -- --nocapture [--ignored]`.
"""

import argparse
import http.client
import json
import socket
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


def raw(addr, data, wait=10.0):
    """Sends bytes on a new connection; the status code of the answer (0: none)."""
    s = socket.create_connection(addr, timeout=wait)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                return 0
            buf += chunk
        return int(buf.split(b" ")[1])
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        s.close()


def request(url, method, path, key=None, body=None):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def metrics_attack(url, pid, n):
    u = urllib.parse.urlparse(url)
    addr = (u.hostname, u.port)
    before = len(request(url, "GET", "/metrics")[1])
    rss0 = rss_mib(pid)
    t = time.time()

    def one(i):
        method = f"M{i:06d}" + "X" * 8192
        a = raw(addr, f"{method} /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        b = raw(addr, f"GET /attack/{i}/{'p' * 200} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return a, b

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(n)))
    answered = sum((a != 0) + (b != 0) for a, b in results)
    after = len(request(url, "GET", "/metrics")[1])
    return {
        "requests": 2 * n,
        "answered": answered,
        "seconds": round(time.time() - t, 1),
        "metrics_bytes_before": before,
        "metrics_bytes_after": after,
        "rss_mib_before": rss0,
        "rss_mib_after": rss_mib(pid),
    }


def stalled(addr, path, key, length, first=1024):
    s = socket.create_connection(addr, timeout=120)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
    s.sendall(head.encode() + b"x" * first)
    return s


def answer_within(s, wait):
    """(status, seconds) of the answer on s, or (None, wait) when none came."""
    t = time.time()
    s.settimeout(wait)
    try:
        buf = s.recv(4096)
        if not buf:
            return "closed", round(time.time() - t, 1)
        return int(buf.split(b" ")[1]), round(time.time() - t, 1)
    except socket.timeout:
        return None, wait
    except (OSError, ValueError, IndexError):
        return "reset", round(time.time() - t, 1)


def body_attack(url, pid, admin, wait):
    u = urllib.parse.urlparse(url)
    addr = (u.hostname, u.port)
    keys = []
    for i in range(4):
        st, data = request(url, "POST", "/api/v1/keys", admin,
                           json.dumps({"name": f"attack-{time.time()}-{i}", "role": "agent"}))
        keys.append(json.loads(data)["key"])
    event = json.dumps({"event.category": "process", "host.name": "bystander", "message": "hello"})
    out = {"rss_mib_before": rss_mib(pid)}
    s = stalled(addr, "/api/v1/events", keys[0], 1 << 30, first=0)
    out["claim_1gib_on_events"] = answer_within(s, 5)
    s.close()
    one_key = [stalled(addr, "/api/v1/evtx", keys[0], 200 << 20) for _ in range(3)]
    time.sleep(0.5)
    out["one_key_x3_200mib_others_ingest"] = request(url, "POST", "/api/v1/events", keys[3], event)[0]
    out["one_key_x3_200mib_answers"] = [answer_within(x, wait) for x in one_key]
    for x in one_key:
        x.close()
    three_keys = [stalled(addr, "/api/v1/evtx", k, 200 << 20) for k in keys[:3]]
    time.sleep(0.5)
    out["three_keys_200mib_others_ingest"] = request(url, "POST", "/api/v1/events", keys[3], event)[0]
    out["three_keys_200mib_answers"] = [answer_within(x, wait) for x in three_keys]
    for x in three_keys:
        x.close()
    out["rss_mib_after"] = rss_mib(pid)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="an admin API key")
    p.add_argument("--pid", type=int, required=True, help="the server's process id (for RSS)")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--wait", type=float, default=45.0, help="seconds to wait for a stalled upload's answer")
    a = p.parse_args()
    print(json.dumps({"metrics": metrics_attack(a.url, a.pid, a.requests)}), flush=True)
    print(json.dumps({"body_budget": body_attack(a.url, a.pid, a.key, a.wait)}), flush=True)


if __name__ == "__main__":
    main()
