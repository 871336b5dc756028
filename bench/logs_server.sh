#!/usr/bin/env bash
# End to end through the real server: a followed log file to findings (issue 6).
# Prints a Markdown table for docs/benchmarks.md.
#
#   bench/logs_server.sh [LINES]
#
# 0. `vigil gen-logs` writes a clean HDFS-like log (50,000 lines) and a mixed one (LINES,
#    default 200,000; 1% of the blocks fail) with its labels.
# 1. A fresh `vigil serve` follows DIR/*.log ([log_sources], polled every 100 ms) and runs the
#    log analyzer ([log_analysis], sessions by block id, closed after 2 s idle). The clean
#    log is copied in; once every line is stored and every session closed,
#    `POST /api/v1/logs/train` trains the default ensemble (DeepLog + LogBERT + forest) on the
#    recorded sessions.
# 2. The mixed log is copied in. Timed: from the copy until every line is stored, every session
#    closed and judged (this includes the 2 s idle wait of the last sessions). Each line is
#    read, stored in SQLite, mined by the live Drain and sessionised; each session is judged.
# 3. Findings of analyzer `logs` are compared with the failed blocks of labels.csv; peak RSS of
#    the server is sampled every 200 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-200000}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; kill -9 $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$VIGIL" gen-logs --out "$WORK/clean" --lines 50000 --anomaly-rate 0 --seed 3 > /dev/null
"$VIGIL" gen-logs --out "$WORK/mixed" --lines "$LINES" --anomaly-rate 0.01 --seed 4 > /dev/null
mkdir -p "$WORK/in"
cat > "$WORK/vigil.toml" <<TOML
[log_sources]
files = ["$WORK/in/*.log"]
poll_ms = 100
[log_analysis]
idle_secs = 2
TOML

RUST_LOG=warn "$VIGIL" serve --config "$WORK/vigil.toml" --data-dir "$WORK/data" \
  --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out")
KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out" | head -1)
[ -n "$URL" ] && [ -n "$KEY" ] || { cat "$WORK/out" "$WORK/err" >&2; exit 1; }

peak_rss() {
  local peak=0 k v
  while kill -0 "$PID" 2>/dev/null; do
    while read -r k v _; do
      [ "$k" = VmRSS: ] && [ "$v" -gt "$peak" ] && { peak=$v; echo "$peak" > "$WORK/rss"; }
    done < "/proc/$PID/status" || true
    sleep 0.2
  done
}
peak_rss &

metric() { # metric NAME [LABEL]: the sum of a counter's series (matching LABEL)
  curl -sS "$URL/metrics" | awk -v n="$1" -v l="${2:-}" \
    'index($1, n) == 1 && index($1, l) > 0 {s += $2} END {printf "%d\n", s}'
}
status() { curl -sS -H "Authorization: Bearer $KEY" "$URL/api/v1/logs/status"; }
open_sessions() { status | python3 -c 'import json,sys; print(json.load(sys.stdin)["open_sessions"])'; }
wait_done() { # wait_done LINES: until LINES lines are stored and no session is open
  for _ in $(seq 6000); do
    if [ "$(metric vigil_log_lines_total)" -ge "$1" ] && [ "$(open_sessions)" = 0 ]; then
      return 0
    fi
    sleep 0.05
  done
  echo "timed out waiting for $1 lines" >&2; exit 1
}

CLEAN=$(wc -l < "$WORK/clean/hdfs.log")
MIXED=$(wc -l < "$WORK/mixed/hdfs.log")
cp "$WORK/clean/hdfs.log" "$WORK/in/clean.log"
wait_done "$CLEAN"
T0=$(date +%s.%N)
TRAIN=$(curl -sS --max-time 1800 -X POST -H "Authorization: Bearer $KEY" \
  -H 'Content-Type: application/json' -d '{}' "$URL/api/v1/logs/train")
T1=$(date +%s.%N)
echo "train: $(head -c 300 <<< "$TRAIN")" >&2
grep -q '"version":1' <<< "$TRAIN" || { echo "training failed: $TRAIN" >&2; exit 1; }
BEFORE=$(metric vigil_log_sessions_total)

START=$(date +%s.%N)
cp "$WORK/mixed/hdfs.log" "$WORK/in/mixed.log"
wait_done $((CLEAN + MIXED))
END=$(date +%s.%N)
SESSIONS=$(( $(metric vigil_log_sessions_total) - BEFORE ))

# Findings against the failed blocks.
python3 - "$URL" "$KEY" "$WORK/mixed/labels.csv" "$MIXED" "$START" "$END" "$T0" "$T1" \
  "$SESSIONS" "$(cat "$WORK/rss")" <<'PY'
import csv, json, sys, urllib.request
url, key, labels, lines, start, end, t0, t1, sessions, rss = sys.argv[1:]
failed = {row[3].split(":", 1)[1] for row in csv.reader(open(labels))
          if row[0] == "hdfs.log" and row[2] == "1"}
flagged, nxt = set(), None
while True:
    q = f"{url}/api/v1/findings?analyzer=logs&limit=1000" + (f"&next={nxt}" if nxt else "")
    req = urllib.request.Request(q, headers={"Authorization": f"Bearer {key}"})
    page = json.load(urllib.request.urlopen(req))
    flagged |= {f["evidence"]["session"] for f in page["findings"]}
    nxt = page.get("next")
    if not nxt:
        break
secs = float(end) - float(start)
tp = len(flagged & failed)
print("| lines | sessions | seconds | lines/s | failed blocks found | false alarms | train s | peak RSS |")
print("|---|---|---|---|---|---|---|---|")
print(f"| {int(lines):,} | {int(sessions):,} | {secs:.1f} | {int(lines)/secs:,.0f} | "
      f"{tp} of {len(failed)} | {len(flagged - failed)} | {float(t1)-float(t0):.0f} | "
      f"{int(rss)//1024} MiB |")
PY
