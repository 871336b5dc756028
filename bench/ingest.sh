#!/usr/bin/env bash
# Whole-system ingest benchmark, Vigil side by side with the baseline a user would otherwise
# write (bench/baseline/fastapi_ingest.py: FastAPI + uvicorn + SQLite, the seeds' own stack,
# same durability and API shape). Prints a Markdown table for docs/benchmarks.md.
#
#   bench/ingest.sh [EVENTS] [SECONDS]
#
# 1. Durable bulk throughput: `vigil events send` posts EVENTS (default 500000) generated ECS
#    events as NDJSON, 5000 a request, 4 requests in flight; an event counts once its 202
#    arrived, i.e. after the commit (synchronous=FULL, fsync per commit).
# 2. Single-event latency at a fixed rate: `hey` (Debian) POSTs one event at a time at
#    1000 requests/s (10 workers x 100/s) for SECONDS (default 30).
# 3. Peak RSS of the server (all its processes), sampled every 200 ms, each run on a fresh
#    server and data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-500000}
SECONDS_AT_RATE=${2:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"

command -v hey >/dev/null || { echo "installing hey (Debian)" >&2; apt-get install -y -q hey >/dev/null; }
if [ ! -x "$VENV/bin/uvicorn" ]; then
  echo "installing the FastAPI baseline into $VENV" >&2
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q fastapi uvicorn >&2
fi
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

python3 - "$EVENTS" > "$WORK/events.ndjson" <<'PY'
import json, random, sys
random.seed(7)
n = int(sys.argv[1])
procs = ["powershell.exe", "cmd.exe", "svchost.exe", "chrome.exe", "bash", "sshd", "curl"]
out = sys.stdout
for i in range(n):
    e = {
        "@timestamp": "2026-11-24T10:%02d:%02d.%06dZ" % (i // 60000 % 60, i // 1000 % 60, i % 1000000),
        "event": {"category": random.choice(["process", "network", "file"]), "action": "start"},
        "host": {"name": "host-%d" % (i % 200)},
        "agent": {"id": "agent-%d" % (i % 200)},
        "process": {"pid": random.randint(100, 65000), "name": random.choice(procs),
                    "command_line": "%s -arg %d" % (random.choice(procs), i)},
        "source": {"ip": "10.0.%d.%d" % (i % 250, i % 200), "port": random.randint(1024, 65535)},
        "destination": {"ip": "93.184.%d.%d" % (i % 250, i % 240), "port": 443},
        "message": "synthetic benchmark event %d" % i,
    }
    out.write(json.dumps(e, separators=(",", ":")) + "\n")
PY
BYTES=$(stat -c %s "$WORK/events.ndjson")
printf '{"event.category":"process","host.name":"web-1","process.name":"bash","process.pid":42,"message":"hey"}' > "$WORK/one.json"

# start <name> <target>: target is vigil-full, vigil-normal or fastapi. Sets PID URL KEY.
start() {
  local name=$1 target=$2 dir="$WORK/data-$1"
  case $target in
    vigil-*)
      VIGIL_STORE__SYNCHRONOUS="\"${target#vigil-}\"" RUST_LOG=warn \
        "$VIGIL" serve --data-dir "$dir" --listen 127.0.0.1:0 > "$WORK/out-$name" 2> "$WORK/err-$name" &
      PID=$!
      for _ in $(seq 100); do grep -q "listening on" "$WORK/out-$name" 2>/dev/null && break; sleep 0.1; done
      URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out-$name")
      KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out-$name")
      ;;
    fastapi)
      mkdir -p "$dir"; KEY=baseline-token; URL=http://127.0.0.1:18199
      (cd bench/baseline && BASELINE_DB="$dir/b.db" BASELINE_TOKEN=$KEY exec "$VENV/bin/uvicorn" \
        fastapi_ingest:app --host 127.0.0.1 --port 18199 --workers 2 --log-level warning) \
        > "$WORK/out-$name" 2> "$WORK/err-$name" &
      PID=$!
      for _ in $(seq 100); do curl -s -o /dev/null "$URL/docs" && break; sleep 0.2; done
      ;;
  esac
  sample_rss "$PID" "$WORK/rss-$name" &
}

# Between runs: stop, then flush dirty pages so that one run's writeback does not land in the next.
stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; sync; sleep 3; }

sample_rss() { # peak summed RSS of $1 and its children, until $1 exits; forks nothing per tick
  sleep 1
  local pids="$1 $(pgrep -P "$1" | xargs)" peak=0
  while kill -0 "$1" 2>/dev/null; do
    local total=0 p k v
    for p in $pids; do
      while read -r k v _; do [ "$k" = VmRSS: ] && total=$((total + v)); done 2>/dev/null < "/proc/$p/status" || true
    done
    if [ "$total" -gt "$peak" ]; then peak=$total; echo "$peak" > "$2"; fi
    sleep 0.5
  done
}

bulk() { # bulk <name>: prints "events_per_second accepted seconds rejected"
  "$VIGIL" events send "$WORK/events.ndjson" --url "$URL" --token "$KEY" --batch 5000 --concurrency 4 --json > "$WORK/bulk-$1.json" || true
  python3 -c "import json;d=json.load(open('$WORK/bulk-$1.json'));print('%.0f %d %.2f %d' % (d['events_per_second'], d['accepted'], d['seconds'], d['rejected']))"
}

rate() { # rate <name>: fixed-rate single POSTs with hey
  hey -z "${SECONDS_AT_RATE}s" -c 10 -q 100 -m POST -T application/json \
    -H "Authorization: Bearer $KEY" -D "$WORK/one.json" "$URL/api/v1/events" > "$WORK/hey-$1.txt"
}

pct() { awk -v p="$2%" '$1==p {printf "%.1f", $3*1000}' "$WORK/hey-$1.txt"; }
rps() { awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/hey-$1.txt"; }
codes() { sed -n '/Status code distribution/,/^$/p' "$WORK/hey-$1.txt" | tail -n +2 | xargs; }
rss() { echo $(( $(cat "$WORK/rss-$1" 2>/dev/null || echo 0) / 1024 )); }

start vbulk vigil-full;    read -r V_EPS V_ACC V_SEC V_REJ <<< "$(bulk vbulk)";  stop
start vnormal vigil-normal; read -r N_EPS N_ACC N_SEC N_REJ <<< "$(bulk vnormal)"; stop
start fbulk fastapi;       read -r F_EPS F_ACC F_SEC F_REJ <<< "$(bulk fbulk)";  stop
start vrate vigil-full;    rate vrate; stop
start frate fastapi;       rate frate; stop

ratio() { python3 -c "print('%.1f' % ($1 / max($2, 1e-9)))"; }

cat <<EOF
Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo); input $EVENTS events, $((BYTES / 1024 / 1024)) MiB NDJSON; fixed-rate runs ${SECONDS_AT_RATE} s.

| measurement | Vigil | FastAPI + SQLite baseline | Vigil ÷ baseline | goal (Vigil) |
|---|---|---|---|---|
| bulk NDJSON, durable (\`synchronous=FULL\`), events/s | **${V_EPS}** (${V_ACC} acked in ${V_SEC} s, ${V_REJ} rejected) | ${F_EPS} (${F_ACC} acked in ${F_SEC} s) | $(ratio "$V_EPS" "$F_EPS")× | ≥ 50,000 |
| bulk NDJSON, \`synchronous=NORMAL\`, events/s | ${N_EPS} | — | — | — |
| single POST at 1,000 req/s: achieved req/s | $(rps vrate) ($(codes vrate)) | $(rps frate) ($(codes frate)) | — | 1,000 |
| single POST latency p50 / p90 / p99, ms | $(pct vrate 50) / $(pct vrate 90) / **$(pct vrate 99)** | $(pct frate 50) / $(pct frate 90) / $(pct frate 99) | p99: $(ratio "$(pct frate 99)" "$(pct vrate 99)")× lower | p99 < 5 ms |
| peak RSS under the 1,000 req/s load, MiB | **$(rss vrate)** | $(rss frate) | — | < 200 MB |
| peak RSS during the bulk run, MiB | $(rss vbulk) | $(rss fbulk) | — | — |
EOF
