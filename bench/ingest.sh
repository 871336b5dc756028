#!/usr/bin/env bash
# Whole-system ingest benchmark. Prints a Markdown table for docs/benchmarks.md.
#
#   bench/ingest.sh [EVENTS] [SECONDS]
#
# 1. Durable bulk throughput: `vigil events send` posts EVENTS (default 500000) generated
#    ECS events as NDJSON (5000 a request, 4 in flight); every event counted is acknowledged,
#    i.e. committed and fsynced (store.synchronous = "full"), then once more with "normal".
# 2. Single-event latency at a fixed rate: `hey` (Debian) sends POST /api/v1/events at
#    1000 requests/s (10 workers x 100/s) for SECONDS (default 30).
# 3. Peak RSS of the server, sampled every 200 ms, for each run (a fresh server each).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-500000}
SECONDS_AT_RATE=${2:-30}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"

command -v hey >/dev/null || { echo "installing hey (Debian)"; apt-get install -y -q hey >/dev/null; }
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

start_server() { # $1 = synchronous mode (full|normal) or "rate" (full); sets PID, URL, KEY
  local dir="$WORK/data-$1"
  local sync=$1; [ "$sync" = rate ] && sync=full
  VIGIL_STORE__SYNCHRONOUS="\"$sync\"" RUST_LOG=warn "$VIGIL" serve --data-dir "$dir" --listen 127.0.0.1:0 > "$WORK/out-$1" 2>"$WORK/err-$1" &
  PID=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/out-$1" 2>/dev/null && break; sleep 0.1; done
  URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out-$1")
  KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out-$1")
}

sample_rss() { # $1 = pid, $2 = output file; until the pid exits
  local peak=0
  while kill -0 "$1" 2>/dev/null; do
    local kb; kb=$(awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
    [ "${kb:-0}" -gt "$peak" ] && peak=$kb && echo "$peak" > "$2"
    sleep 0.2
  done
}

declare -A BULK
for mode in full normal; do
  start_server "$mode"
  sample_rss "$PID" "$WORK/rss-$mode" &
  "$VIGIL" events send "$WORK/events.ndjson" --url "$URL" --token "$KEY" --batch 5000 --concurrency 4 --json > "$WORK/bulk-$mode.json"
  BULK[$mode]=$(python3 -c "import json;d=json.load(open('$WORK/bulk-$mode.json'));print('%d %.2f %.0f %d' % (d['accepted'], d['seconds'], d['events_per_second'], d['rejected']))")
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
done

# Fixed-rate single events, in a fresh server so that its RSS is its own.
start_server rate
sample_rss "$PID" "$WORK/rss-rate" &
printf '{"event.category":"process","host.name":"web-1","process.name":"bash","process.pid":42,"message":"hey"}' > "$WORK/one.json"
hey -z "${SECONDS_AT_RATE}s" -c 10 -q 100 -m POST -T application/json \
  -H "Authorization: Bearer $KEY" -D "$WORK/one.json" "$URL/api/v1/events" > "$WORK/hey.txt"
kill -TERM "$PID"; wait "$PID" 2>/dev/null || true

pct() { awk -v p="$1%" '$1==p {print $3*1000}' "$WORK/hey.txt"; }
RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/hey.txt")
STATUS=$(sed -n '/Status code distribution/,/^$/p' "$WORK/hey.txt" | tail -n +2 | xargs)
ERRORS=$(sed -n '/Error distribution/,/^$/p' "$WORK/hey.txt" | tail -n +2 | wc -l)
read -r acc_f sec_f eps_f rej_f <<< "${BULK[full]}"
read -r acc_n sec_n eps_n rej_n <<< "${BULK[normal]}"

cat <<EOF
Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -r); input $EVENTS events, $((BYTES / 1024 / 1024)) MiB NDJSON.

| measurement | result | goal |
|---|---|---|
| bulk NDJSON, durable (\`synchronous=full\`, fsync per group commit) | **${eps_f} events/s** (${acc_f} acknowledged in ${sec_f} s, ${rej_f} rejected) | ≥ 50,000 |
| bulk NDJSON, \`synchronous=normal\` (survives a Vigil crash, not a power cut) | ${eps_n} events/s (${acc_n} in ${sec_n} s) | — |
| single POST at 1,000 req/s for ${SECONDS_AT_RATE} s: achieved rate | ${RPS} req/s; status codes: ${STATUS}; transport errors: ${ERRORS} | 1,000 |
| single POST latency p50 / p90 / p99 | $(pct 50) / $(pct 90) / $(pct 99) ms | p99 < 5 ms |
| server peak RSS under the 1,000 req/s single-POST load | $(( $(cat "$WORK/rss-rate") / 1024 )) MiB | < 200 MB |
| server peak RSS during the bulk runs (4 × 5,000-event requests in flight) | $(( $(cat "$WORK/rss-full") / 1024 )) MiB (full), $(( $(cat "$WORK/rss-normal") / 1024 )) MiB (normal) | — |
EOF
