#!/usr/bin/env bash
# Load and soak run (issue 12): mixed traffic at fixed rates against a fresh `vigil serve`
# (temporary data directory, file-analysis protocol on), then an overload and a recovery.
# Prints a progress line every 30 s and a summary table, writes the full summary as JSON
# (config, per-kind stats, RSS/CPU/queue series per second, verdicts); exits 1 when a
# verdict fails.
#
#   bench/soak.sh                           # 10-minute soak, 30 s overload, 30 s recovery
#   DURATION=60 OVERLOAD=20 RECOVERY=15 bench/soak.sh      # a short run
#   bench/soak.sh --ws 8 --server-env RUST_LOG=info        # extra vigil-load options
#
# Environment: DURATION (600), WARMUP (90 from 300 s of DURATION, else a tenth of it),
# OVERLOAD (30; 0 for none), RECOVERY (30), EVERY (30), OUT (/tmp/vigil-soak.json),
# SERVER_LOG (/tmp/vigil-soak-server.log, the server's stderr), NO_BUILD=1 to use the
# release binaries already built, CARGO_TARGET_DIR (~/.cache/vigil/target).
#
# Steady load, sized to keep a 2-core machine well under half busy: 5 bulk requests/s of
# 300 events (1,500 events/s), 20 `POST /api/v1/analyze`/s (half of them match the run's
# script), 20 network batches/s of 10 records, 5 static file scans/s over the binary
# protocol on 4 connections, 4 WebSocket subscribers of the findings stream. Overload: 64
# bulk requests of 2,000 events in flight, back to back, on top of the steady load.
#
# RSS is measured after a 90 s warm-up: the server trains its first network model at the
# first one-minute tick after 1,000 connections (~+60 MB for a few seconds, then back).
#
# Verdicts: zero_5xx; zero_lost (every event a bulk answer acknowledged is listed by
# GET /api/v1/events for the run's host); rss_flat (least-squares slope of RSS after the
# warm-up, projected over the measured window, at most max(10 MB, 5% of the mean RSS));
# recovered (from some second of the recovery on, every second answers >= 99% 2xx, held
# >= 5 s); retry_after (every 429/503 carries Retry-After); memory_bounded (RSS levels off
# in an overload of 20 s or more: the last third's peak is at most 10% + 10 MB over the
# middle third's; add --rss-limit-mb N for a budget as well). Exit status: 0 all pass, 1 a
# verdict failed, 2 the run could not be made.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
DURATION=${DURATION:-600}
WARMUP=${WARMUP:-$(( DURATION >= 300 ? 90 : DURATION / 10 ))}
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p vigil -p vigil-load
fi
exec "$CARGO_TARGET_DIR/release/vigil-load" \
  --spawn "$CARGO_TARGET_DIR/release/vigil" \
  --duration "$DURATION" --warmup "$WARMUP" \
  --overload "${OVERLOAD:-30}" --recovery "${RECOVERY:-30}" \
  --bulk-rate 5 --batch 300 \
  --analyze-rate 20 \
  --net-rate 20 --net-batch 10 \
  --file-rate 5 --file-conns 4 \
  --ws 4 \
  --overload-concurrency 64 --overload-batch 2000 \
  --report-every "${EVERY:-30}" \
  --server-log "${SERVER_LOG:-/tmp/vigil-soak-server.log}" \
  --json "${OUT:-/tmp/vigil-soak.json}" \
  "$@"
