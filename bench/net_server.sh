#!/usr/bin/env bash
# Whole-system benchmark of the network detector through the real server (seed 002's API).
# Prints a Markdown table for docs/benchmarks.md.
#
#   bench/net_server.sh [SECONDS]
#
# 0. A fresh server and data directory; bench/net_load.py seeds 6,000 ordinary connections
#    (8 hosts; browsers, mail, an updater and DNS to a few dozen remotes on 443/80/53, over
#    the last 2 hours) and `POST /api/v1/network/train` must promote the model.
# 1. Single-record latency at a fixed rate: `hey` (Debian) POSTs seed 002's example record
#    (no timestamp: server time) to /api/v1/network/analyze at 1,000 requests/s (10 workers
#    x 100/s) for SECONDS (default 20).
# 2. Batch throughput: net_load.py POSTs batches of 1,000 records to /analyze/batch, 4 in
#    flight, for 15 s: the seed traffic's mix and density, continued from tomorrow on so that
#    every record is new, each client sending its own two hosts in time order; a 429/503 (the time-series writer is behind) is counted and the
#    client waits Retry-After.
# 3. Peak RSS of the server, sampled every 200 ms during 1 and 2.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_AT_RATE=${1:-20}
BATCH_SECONDS=15
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"

command -v hey >/dev/null || { echo "installing hey (Debian)" >&2; apt-get install -y -q hey >/dev/null; }
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; sleep 1; kill -9 $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT

RUST_LOG=warn "$VIGIL" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out")
KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out" | head -1)
[ -n "$URL" ] && [ -n "$KEY" ] || { cat "$WORK/out" "$WORK/err" >&2; exit 1; }

sample_rss() { # sample_rss FILE: peak VmRSS (KiB) of the server every 200 ms until killed
  local peak=0 k v
  while kill -0 "$PID" 2>/dev/null; do
    while read -r k v _; do
      [ "$k" = VmRSS: ] && [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" > "$1"; }
    done < "/proc/$PID/status" || true
    sleep 0.2
  done
}

# 0. Train.
python3 bench/net_load.py seed "$URL" "$KEY" 6000
sleep 1
TRAIN=$(curl -sS -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d '{"since": "1d"}' "$URL/api/v1/network/train")
echo "train: $TRAIN" >&2
grep -q '"promoted":true' <<< "$TRAIN" || { echo "the model was not promoted" >&2; exit 1; }
read -r MODEL METHOD FPR <<< "$(curl -sS -H "Authorization: Bearer $KEY" "$URL/api/v1/network/status" \
  | python3 -c 'import json,sys; m=json.load(sys.stdin)["model"]; print(m["version"], m["method"], m["target_fpr"])')"

# 1. Single records at 1,000 requests/s.
printf '{"host":"ws-1","process_id":1234,"process_name":"chrome.exe","local_ip":"192.168.1.100","remote_ip":"203.0.113.1","protocol":"TCP","bytes_sent":1024,"bytes_received":4096}' > "$WORK/one.json"
sample_rss "$WORK/rss-rate" & SAMPLER=$!
hey -z "${SECONDS_AT_RATE}s" -c 10 -q 100 -m POST -T application/json \
  -H "Authorization: Bearer $KEY" -D "$WORK/one.json" "$URL/api/v1/network/analyze" > "$WORK/hey.txt"
kill "$SAMPLER"

# 2. Batches of 1,000.
sample_rss "$WORK/rss-batch" & SAMPLER=$!
read -r B_RPS B_REQ B_SCORED B_REJ B_ANOM B_CODES <<< "$(python3 bench/net_load.py batch "$URL" "$KEY" "$BATCH_SECONDS")"
kill "$SAMPLER"
STATUS=$(curl -sS -H "Authorization: Bearer $KEY" "$URL/api/v1/network/status" \
  | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["connections_scored_since_start"], s["rows_dropped_since_start"], s["model"]["version"])')
read -r SCORED DROPPED MODEL_AFTER <<< "$STATUS"

pct() { awk -v p="$1%" '$1==p {printf "%.2f", $3*1000}' "$WORK/hey.txt"; }
rps() { awk '/Requests\/sec/ {printf "%.0f", $2}' "$WORK/hey.txt"; }
codes() { sed -n '/Status code distribution/,/^$/p' "$WORK/hey.txt" | tail -n +2 | xargs; }
hey_errors() { # non-200 answers plus transport errors
  awk '/Status code distribution/ {s=1; next} /Error distribution/ {s=2; next} /^ *$/ {s=0}
       s==1 && $1 != "[200]" {n += $2} s==2 {gsub(/[][]/, "", $1); n += $1} END {print n+0}' "$WORK/hey.txt"; }
mib() { echo $(( $(cat "$1" 2>/dev/null || echo 0) / 1024 )); }
R_RATE=$(mib "$WORK/rss-rate"); R_BATCH=$(mib "$WORK/rss-batch")

cat <<EOF
$(date -u '+%Y-%m-%d %H:%M UTC'); nproc $(nproc); commit $(git rev-parse --short HEAD); model $MODEL ($METHOD$([ "$MODEL_AFTER" = "$MODEL" ] || echo ", replaced during the run by $MODEL_AFTER")), trained on 6,000 seeded connections; fixed-rate run ${SECONDS_AT_RATE} s, batch run ${BATCH_SECONDS} s.

| measurement | result | goal |
|---|---|---|
| single record at 1,000 req/s: achieved req/s (status codes) | $(rps) ($(codes)) | 1,000 |
| single record latency p50 / p95 / p99, ms | $(pct 50) / $(pct 95) / **$(pct 99)** | p95 < 10 (seed), p99 < 2 (Vigil) |
| single record errors (non-200 + transport) | $(hey_errors) | 0 |
| batch of 1,000, 4 in flight: records/s scored | **${B_RPS}** | ≥ 50,000 |
| batch run: requests (status:count), records rejected | ${B_REQ} (${B_CODES}), ${B_REJ} | no 429/503 |
| peak RSS, fixed rate / batch, MiB | ${R_RATE} / ${R_BATCH} (peak **$(( R_RATE > R_BATCH ? R_RATE : R_BATCH ))**) | < 200 MB |
| batch run: anomalies flagged (ordinary traffic) | ${B_ANOM} of ${B_SCORED} scored | about the target FPR, ${FPR} |
| server counters: connections scored, rows dropped (writer behind) | ${SCORED}, ${DROPPED} | —, 0 |
EOF
