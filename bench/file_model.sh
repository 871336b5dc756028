#!/usr/bin/env bash
# The file model against scikit-learn on the same split of ClaMP's data, in the same run.
#
#   bench/file_model.sh [CLAMP_CSV] [TREES]
#
# Splits ClaMP_Raw-train.csv 80/20 (stratified, fixed seed) into a temporary folder, then
# trains and scores `vigil eval file` and scikit-learn's RandomForestClassifier (same tree
# count, n_jobs=2) on it; prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CSV=${1:-../shared/data/clamp/ClaMP_Raw-train.csv}
TREES=${2:-200}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import sklearn" 2>/dev/null || "$VENV/bin/pip" install -q scikit-learn >&2
cargo build --release -q -p vigil
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$VENV/bin/python" - "$CSV" "$WORK" <<'PY'
import csv, random, sys
src, out = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(src)))
header, body = rows[0], rows[1:]
rng = random.Random(20261124)
by_class = {}
for r in body:
    by_class.setdefault(r[-1], []).append(r)
train, test = [], []
for rs in by_class.values():
    rng.shuffle(rs)
    cut = int(len(rs) * 0.8)
    train += rs[:cut]; test += rs[cut:]
for name, part in (("train", train), ("test", test)):
    with open(f"{out}/{name}.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(header); w.writerows(part)
PY
"$CARGO_TARGET_DIR/release/vigil" eval file --train "$WORK/train.csv" --test "$WORK/test.csv" \
  --trees "$TREES" --json > "$WORK/vigil.json"
"$VENV/bin/python" - "$WORK" "$TREES" > "$WORK/sklearn.json" <<'PY'
import json, sys, time
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score, accuracy_score, roc_curve
work, trees = sys.argv[1], int(sys.argv[2])
def load(p):
    import csv
    rows = list(csv.reader(open(p)))
    h = rows[0]; keep = [i for i, c in enumerate(h) if c not in ("e_res", "e_res2", "class")]
    X = np.array([[float(r[i]) for i in keep] for r in rows[1:]], dtype=np.float32)
    y = np.array([int(r[h.index("class")]) for r in rows[1:]])
    return X, y
Xtr, ytr = load(f"{work}/train.csv"); Xte, yte = load(f"{work}/test.csv")
t = time.perf_counter()
m = RandomForestClassifier(n_estimators=trees, n_jobs=2, random_state=0).fit(Xtr, ytr)
fit = time.perf_counter() - t
p = m.predict_proba(Xte)[:, 1]
fpr, tpr, _ = roc_curve(yte, p)
det = max(t for f, t in zip(fpr, tpr) if f <= 0.01)
print(json.dumps({"auc": roc_auc_score(yte, p), "accuracy": accuracy_score(yte, p >= 0.5),
                  "detection_at_1pct_fpr": det, "fit_seconds": fit}))
PY
"$VENV/bin/python" - "$WORK" "$TREES" <<'PY'
import json, sys
work, trees = sys.argv[1], sys.argv[2]
v = json.load(open(f"{work}/vigil.json")); s = json.load(open(f"{work}/sklearn.json"))
print(f"ClaMP raw features, stratified 80/20 split of ClaMP_Raw-train.csv ({v['n_train']} train / {v['n_test']} test), {trees} trees, 2 cores:\n")
print("| model | ROC AUC | accuracy | detection at 1% FPR | fit seconds |")
print("|---|---|---|---|---|")
for name, r in (("Vigil random forest (`vigil eval file`)", v), ("scikit-learn RandomForestClassifier (n_jobs=2)", s)):
    print(f"| {name} | {r['auc']:.4f} | {r['accuracy']:.4f} | {r['detection_at_1pct_fpr']:.4f} | {r['fit_seconds']:.2f} |")
print(f"\nFit time ratio (scikit-learn / Vigil): {s['fit_seconds'] / v['fit_seconds']:.1f}x")
PY
