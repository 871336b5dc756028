"""Offline triage through the real server: latency and reports per minute.

    python3 bench/triage_load.py URL KEY [N] [CONCURRENCY]

Seeds 20,000 events whose addresses overlap those of the triaged lines (so the tools find
data), then posts N event lines taken from the shipped labelled set (re-dated to now, so that
the tools' windows around the event hold the seeded events) to POST /api/v1/triage:
first one at a time (latency p50/p99, client side), then from CONCURRENCY clients at once
(reports per minute). Prints JSON.
"""
import json
import random
import statistics
import sys
import threading
import time
import urllib.request


def post(url, key, path, body, ctype="application/json"):
    req = urllib.request.Request(
        url + path, data=body, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.read()


def main():
    url, key = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    conc = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    rows = [json.loads(l) for l in open("crates/vigil-triage/data/events.jsonl", encoding="utf-8")]
    lines = [r["text"] for r in rows if r["source"] == "vigil"]
    rng = random.Random(5)
    rng.shuffle(lines)
    # Dated now, so that the tools' windows (around the event's time) hold the seeded events.
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    dated = []
    for l in lines[:n]:
        words = l.split(" ")
        first = next(i for i, w in enumerate(words) if ":" in w and w.count(".") == 3)
        dated.append(now + " " + " ".join(words[first:]))
    lines = dated
    ips = set()
    for l in lines:
        for w in l.split():
            if ":" in w and w.count(".") == 3:
                ips.add(w.rsplit(":", 1)[0])
    ips = sorted(ips)
    # 20k events mentioning those addresses.
    for batch in range(20):
        body = "".join(
            json.dumps({"event": {"category": ["network"]}, "host": {"name": f"h{rng.randrange(50)}"},
                        "source": {"ip": rng.choice(ips)}, "destination": {"ip": rng.choice(ips),
                        "port": rng.choice([22, 80, 443, 445, 3389])}, "message": "connection"}) + "\n"
            for _ in range(1000))
        post(url, key, "/api/v1/events/bulk", body.encode(), "application/x-ndjson")
    time.sleep(2)

    def triage(line):
        t = time.perf_counter()
        status, body = post(url, key, "/api/v1/triage", json.dumps({"line": line}).encode())
        assert status == 201, body
        return time.perf_counter() - t, json.loads(body)

    latencies, server_ms, verdicts, rows_seen = [], [], {}, []
    for l in lines:
        dt, r = triage(l)
        latencies.append(dt * 1000)
        server_ms.append(r["report"]["millis"])
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
        rows_seen.append(sum(c.get("output", {}).get("data", {}).get("count", 0)
                             for c in r["report"]["tool_calls"] if c["tool"] == "search_events"))
    latencies.sort()
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))]

    todo = list(lines)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                l = todo.pop()
            triage(l)

    t = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(conc)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    print(json.dumps({
        "reports": n, "seeded_events": 20000,
        "sequential": {"p50_ms": q(latencies, 0.5), "p99_ms": q(latencies, 0.99),
                       "mean_ms": statistics.mean(latencies),
                       "server_p50_ms": q(sorted(server_ms), 0.5)},
        "concurrent": {"clients": conc, "seconds": wall, "reports_per_minute": n / wall * 60},
        "verdicts": verdicts,
        "search_events_rows_per_report": statistics.mean(rows_seen),
    }, indent=2))


if __name__ == "__main__":
    main()
