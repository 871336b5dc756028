#!/usr/bin/env bash
# The binary protocol under load: requests/s and latency with 50 concurrent clients
# (static analysis of a small PE), and the latency of static analysis of a 1 MB PE file.
#
#   bench/protocol.sh [SECONDS]
#
# Starts a release `vigil serve` with the protocol on, then drives it with
# docs/vigil_file_client.py from 5 processes × 10 threads (Python, on the same 2 cores:
# the client's own cost is part of the figures). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
[ -d /usr/share/clamav-testfiles ] || apt-get install -y -q clamav-testfiles >/dev/null
cargo build --release -q -p vigil
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=19377
VIGIL_PROTOCOL__ENABLED=true VIGIL_PROTOCOL__LISTEN=127.0.0.1:$PORT RUST_LOG=error \
  "$CARGO_TARGET_DIR/release/vigil" serve --data-dir "$WORK/d" --listen 127.0.0.1:0 > "$WORK/out" 2>&1 &
for _ in $(seq 100); do grep -q "protocol on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out" | head -1)
python3 - "$PORT" "$KEY" "$SECS" <<'PY'
import multiprocessing as mp, sys, threading, time
sys.path.insert(0, "docs")
from vigil_file_client import VigilFileClient
port, key, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
small = open("/usr/share/clamav-testfiles/clam-upx.exe", "rb").read()
big = open("/usr/share/clamav-testfiles/clam.exe", "rb").read()
big = big + bytes(range(256)) * ((1 << 20) // 256)          # a 1 MiB PE (large overlay)

def worker(q, deadline):
    lat = []
    def run():
        c = VigilFileClient("127.0.0.1", port, api_key=key)
        c.auth()
        while time.time() < deadline:
            t = time.perf_counter()
            c.analyze(1, small)
            lat.append(time.perf_counter() - t)
    ts = [threading.Thread(target=run) for _ in range(10)]
    for t in ts: t.start()
    for t in ts: t.join()
    q.put(lat)

deadline = time.time() + secs
q = mp.Queue()
ps = [mp.Process(target=worker, args=(q, deadline)) for _ in range(5)]
t0 = time.time()
for p in ps: p.start()
lat = []
for _ in ps: lat += q.get()
for p in ps: p.join()
took = time.time() - t0
lat.sort()
q_ = lambda p: lat[int(len(lat) * p)] * 1000
c = VigilFileClient("127.0.0.1", port, api_key=key); c.auth()
one = []
for _ in range(200):
    t = time.perf_counter(); c.analyze(1, big); one.append(time.perf_counter() - t)
one.sort()
print(f"50 clients (5 processes × 10 threads, Python), static analysis of a {len(small)//1024} KiB UPX-packed PE, {secs:.0f} s:\n")
print("| load | requests/s | p50 | p99 |")
print("|---|---|---|---|")
print(f"| 50 concurrent clients | {len(lat)/took:.0f} | {q_(0.5):.1f} ms | {q_(0.99):.1f} ms |")
print(f"| one client, a 1 MiB PE, 200 requests | {200/sum(one):.0f} | {one[100]*1000:.1f} ms | {one[198]*1000:.1f} ms |")
PY
