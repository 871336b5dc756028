#!/usr/bin/env bash
# The triage agent (issue 8): offline triage latency and reports/minute through the real
# server, and the classifier beside scikit-learn on the same held-out split.
#
#   bench/triage.sh [N] [CONCURRENCY]
#
# 1. `vigil eval triage --json` and bench/triage_sklearn.py (TF-IDF char+word n-grams with
#    LogisticRegression and LinearSVC) on the shipped labelled set, same split, same run.
# 2. A fresh `vigil serve` (offline triage, embedded SQLite); bench/triage_load.py seeds
#    20,000 events and posts N lines (default 300) one at a time, then from CONCURRENCY
#    clients (default 4). Each triage classifies, retrieves, runs the playbook's tools over
#    the store and writes the Markdown/JSON report to disk and the store.
# Needs the bench venv (~/.cache/vigil/bench-venv with scikit-learn) or BENCH_PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
CONC=${2:-4}
PY=${BENCH_PYTHON:-$HOME/.cache/vigil/bench-venv/bin/python}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT

echo "## classifier (held-out groups)"
"$VIGIL" eval triage --json
"$PY" bench/triage_sklearn.py

RUST_LOG=warn "$VIGIL" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/err" &
for _ in $(seq 200); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^vigil: listening on //p' "$WORK/out")
KEY=$(grep -o 'vgl_[A-Za-z0-9]*' "$WORK/out" | head -1)
[ -n "$URL" ] && [ -n "$KEY" ] || { cat "$WORK/out" "$WORK/err" >&2; exit 1; }
echo "## offline triage through the server"
python3 bench/triage_load.py "$URL" "$KEY" "$N" "$CONC"
