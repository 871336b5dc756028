#!/usr/bin/env bash
# The network detector against scikit-learn's IsolationForest on NSL-KDD, in the same run.
#
#   bench/net_eval.sh [NSL_KDD_DIR]
#
# Fits on the normal rows of KDDTrain+_20Percent.txt only and scores KDDTest+.txt, with
# `vigil eval net --method knn`, `--method iforest` and bench/net_sklearn.py (IsolationForest,
# 100 trees, thresholds at the 95th and 98th percentile of the normal training scores).
# Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/nsl-kdd}
TRAIN="$DATA/KDDTrain+_20Percent.txt"
TEST="$DATA/KDDTest+.txt"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import sklearn, numpy, pandas" 2>/dev/null \
  || "$VENV/bin/pip" install -q scikit-learn numpy pandas >&2
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
if ! "$VIGIL" eval net --help > /dev/null 2>&1; then
  echo "net_eval.sh: this vigil build has no 'vigil eval net' command; nothing to compare." >&2
  exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for m in knn iforest; do
  "$VIGIL" eval net --method "$m" --train "$TRAIN" --test "$TEST" --json > "$WORK/vigil-$m.json"
done
# The forest with scikit-learn's own parameters (100 trees, 256 rows each).
"$VIGIL" eval net --method iforest --trees 100 --max-samples 256 --train "$TRAIN" --test "$TEST" \
  --json > "$WORK/vigil-iforest-small.json"
"$VENV/bin/python" bench/net_sklearn.py "$TRAIN" "$TEST" > "$WORK/sklearn.ndjson"
"$VENV/bin/python" - "$WORK" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'PY'
import json, sys
work, date, cores = sys.argv[1], sys.argv[2], sys.argv[3]
knn, vif, small = (json.load(open(f"{work}/vigil-{m}.json"))
                   for m in ("knn", "iforest", "iforest-small"))
s95, s98 = (json.loads(l) for l in open(f"{work}/sklearn.ndjson"))
for v in (knn, vif, small):  # both sides must have read the same rows
    for k in ("train_normal_rows", "test_rows", "test_attacks"):
        assert v[k] == s95[k], f"vigil {v['method']}: {k} {v[k]} != scikit-learn's {s95[k]}"
print(f"NSL-KDD, fit on the {s95['train_normal_rows']} normal rows of KDDTrain+_20Percent, "
      f"scored on KDDTest+ ({s95['test_rows']} rows, {s95['test_attacks']} attacks); "
      f"{date}, nproc {cores}:\n")
print("| method | ROC AUC | detection rate | FPR | precision | F1 | fit s | rows/s |")
print("|---|---|---|---|---|---|---|---|")
rows = [(f"Vigil k-NN (`--method knn`, target FPR {knn['target_fpr']})", knn),
        (f"Vigil isolation forest (`--method iforest`: 200 trees x 2048 rows, target FPR {vif['target_fpr']})", vif),
        ("Vigil isolation forest, scikit-learn's parameters (100 trees x 256 rows)", small),
        ("scikit-learn IsolationForest, threshold p95 of normal training scores", s95),
        ("scikit-learn IsolationForest, threshold p98 of normal training scores", s98)]
for name, r in rows:
    print(f"| {name} | {r['auc']:.4f} | {r['detection_rate']:.4f} | {r['fpr']:.4f} | "
          f"{r['precision']:.4f} | {r['f1']:.4f} | {r['fit_seconds']:.2f} | {r['rows_per_second']:,.0f} |")
print()
for label, v in (("k-NN", knn), ("iforest", vif), ("iforest 100x256", small)):
    print(f"AUC: Vigil {label} {v['auc']:.4f} vs scikit-learn {s95['auc']:.4f}")
    print(f"scoring speed ratio (Vigil {label} / scikit-learn IF): "
          f"{v['rows_per_second'] / s95['rows_per_second']:.1f}×")
PY
