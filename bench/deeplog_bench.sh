#!/usr/bin/env bash
# Vigil's DeepLog against the same model in PyTorch (bench/deeplog_torch.py), in the same run.
#
#   bench/deeplog_bench.sh [HDFS_DEEPLOG_DIR] [EPOCHS]
#
# The protocol of ../shared/data/README.md ("Evaluation protocol for the log-key detectors"):
# train on hdfs_train only, score hdfs_labelled_valid.csv and hdfs_test_abnormal. Both sides
# use h = 10, g = 9, embedding 16, 2 LSTM layers of 64, Adam lr 0.003, 256 distinct examples
# a batch, EPOCHS epochs (default 60), END-of-session class, deduplicated weighted examples;
# the PyTorch side takes min_probability and min_steps from Vigil's JSON (0 when this vigil
# has none: the pure top-g rule), and the report checks that the other parameters agree.
# Vigil runs twice, with its per-window prediction cache (the default) and with `--cache 0`;
# PyTorch scores every window in batches of 4,096 under inference_mode. Each run trains its
# own model. Prints a Markdown table for docs/benchmarks.md.
# Run it on an otherwise idle machine: with a cargo build alongside on 2 cores, PyTorch's
# training (OpenMP threads) took 3-10x as long (21-25 s idle, 70-230 s loaded).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/hdfs-deeplog}
EPOCHS=${2:-60}
TRAIN="$DATA/hdfs_train"
LABELLED="$DATA/hdfs_labelled_valid.csv"
ABNORMAL="$DATA/hdfs_test_abnormal"
for f in "$TRAIN" "$LABELLED" "$ABNORMAL"; do
  [ -f "$f" ] || { echo "deeplog_bench.sh: no $f" >&2; exit 1; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
# PyTorch from PyPI only. PyPI's torch for Linux x86-64 is the CUDA build (PyTorch's CPU-only
# wheels are on its own index, which this setup does not reach). Installed with --no-deps it
# does not import: libtorch_global_deps.so and libtorch_cuda.so link libcudart, cuBLAS, cuDNN,
# cuFFT, NCCL, ..., which come in the nvidia-* wheels. So the plain install it is: torch 2.15.0
# adds about 5.4 GB to the venv (3 GB of nvidia-* libraries, 1 GB of triton) in about a minute.
# It runs on the CPU (torch.cuda.is_available() is False without a GPU), on MKL and oneDNN.
"$PY" -c "import torch" 2>/dev/null || "$VENV/bin/pip" install -q torch >&2
"$PY" -c "import torch; torch.nn.LSTM(2, 2)(torch.zeros(1, 1, 2))" \
  || { echo "deeplog_bench.sh: torch does not run in $VENV" >&2; exit 1; }
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
if ! HELP=$("$VIGIL" eval logs --help 2>&1); then
  echo "deeplog_bench.sh: this vigil build has no 'vigil eval logs' command; nothing to compare." >&2
  echo "PyTorch alone: $PY bench/deeplog_torch.py --train $TRAIN --labelled $LABELLED --abnormal $ABNORMAL" >&2
  exit 1
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

COMMON=(--train "$TRAIN" --labelled "$LABELLED" --abnormal "$ABNORMAL" --epochs "$EPOCHS" --json)
"$VIGIL" eval logs --model deeplog "${COMMON[@]}" > "$WORK/vigil.json"
if grep -q -- '--cache' <<< "$HELP"; then
  "$VIGIL" eval logs --model deeplog "${COMMON[@]}" --cache 0 > "$WORK/vigil-nocache.json"
else
  echo "deeplog_bench.sh: 'vigil eval logs' has no --cache; Vigil runs with its default only." >&2
fi
read -r MIN_PROBABILITY MIN_STEPS < <("$PY" -c '
import json, sys
p = json.load(open(sys.argv[1]))["params"]["deeplog"]
print(p.get("min_probability", 0), p.get("min_steps", 0))' "$WORK/vigil.json")
"$PY" bench/deeplog_torch.py "${COMMON[@]}" --min-probability "$MIN_PROBABILITY" \
  --min-steps "$MIN_STEPS" > "$WORK/torch.json"

"$PY" - "$WORK" "$EPOCHS" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'PY'
import json, os, sys
work, epochs, date, cores = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
load = lambda name: json.load(open(f"{work}/{name}.json"))
vigil, torch = load("vigil"), load("torch")
nocache = load("vigil-nocache") if os.path.exists(f"{work}/vigil-nocache.json") else None
tt, tp = torch["params"]["deeplog_training"], torch["params"]["deeplog"]
for v in (vigil, nocache):  # same sessions, same hyper-parameters
    if v is None:
        continue
    vt, vp = v["params"]["deeplog_training"], v["params"]["deeplog"]
    for k in ("window", "top_g", "min_probability", "hidden", "layers", "embedding", "batch",
              "min_steps", "learning_rate", "end_of_session"):
        if k in vp:
            assert vp[k] == tp[k], f"{k}: vigil {vp[k]}, PyTorch {tp[k]}"
    assert vt["distinct_examples"] == tt["distinct_examples"], \
        f"vigil trained on {vt['distinct_examples']} distinct examples, PyTorch {tt['distinct_examples']}"
    for k in ("labelled", "abnormal_sessions", "train_sessions"):
        if k in v:
            assert v[k] == torch[k], f"{k}: vigil {v[k]}, PyTorch {torch[k]}"

n, a = torch["labelled"]
print(f"HDFS (DeepLog data): trained on {torch['train_sessions']:,} normal sessions "
      f"({tt['distinct_examples']:,} distinct (window, next key) examples), scored "
      f"{n + a:,} labelled ({a:,} abnormal) + {torch['abnormal_sessions']:,} abnormal sessions; "
      f"h {tp['window']}, g {tp['top_g']}, min probability {tp['min_probability']}, "
      f"{tp['layers']}x{tp['hidden']} LSTM, embedding {tp['embedding']}, Adam lr "
      f"{tp['learning_rate']}, batch {tp['batch']}, {epochs} epochs (at least "
      f"{tp['min_steps']} steps); {date}, nproc {cores}:\n")
print("| implementation | epochs | train s | final loss | sessions/s | threads | P | R | F1 | FPR | abnormal recall |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
rows = [(f"Vigil DeepLog (Rust, candle training{', window cache' if nocache else ''})", vigil)]
if nocache:
    rows.append(("Vigil DeepLog, `--cache 0`", nocache))
rows.append((f"PyTorch {torch['torch_version']}, batches of 4,096 windows", torch))
for name, r in rows:
    t = r["params"]["deeplog_training"]
    print(f"| {name} | {t.get('epochs', epochs)} | {r['train_seconds']:.1f} | {t['final_loss']:.4f} | "
          f"{r['sessions_per_second']:,.0f} | {r['threads']} | {r['precision']:.4f} | "
          f"{r['recall']:.4f} | {r['f1']:.4f} | {r['fpr']:.4f} | {r['abnormal_recall']:.4f} |")
print(f"\nPyTorch scored {torch['scoring_windows']:,} windows ({torch['distinct_windows']:,} distinct) "
      f"in {torch['scoring_seconds']:.2f} s; sessions with a key unseen in training are flagged "
      f"without scoring on both sides.")
if nocache is None:
    print("This vigil build has no `--cache` option: only its default scorer ran.")
print()
for label, v in (("cache", vigil), ("--cache 0", nocache)):
    if v is None:
        continue
    print(f"scoring speed ratio (Vigil {label} / PyTorch): "
          f"{v['sessions_per_second'] / torch['sessions_per_second']:.1f}×")
    print(f"training time ratio (PyTorch / Vigil {label} run): "
          f"{torch['train_seconds'] / v['train_seconds']:.2f}×")
PY
