#!/usr/bin/env bash
# Vigil's Drain log template miner against Python's drain3 (PyPI), in the same run.
#
#   bench/drain_bench.sh [LOGHUB_2K_DIR] [SPEED_LINES]
#
# Accuracy: grouping accuracy on the Content column of each Loghub 2k system, from
# `vigil eval parse --loghub DIR --json` (Vigil's defaults, its per-system tuned settings, and
# logpai/logparser's published Drain figures) and from bench/drain3_bench.py (drain3 with
# Vigil's default depth 4, similarity 0.5, 100 children, and IP/hex/number masks).
# Speed: the Content of all systems concatenated and repeated to SPEED_LINES lines (default
# 400,000), mined by `vigil logs parse FILE --json` and by drain3's add_log_message, one pass a
# run, median of 3 runs each; reading the file is excluded on both sides.
# Prints Markdown tables for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/loghub-2k}
LINES=${2:-400000}
RUNS=3
[ -d "$DATA" ] || { echo "drain_bench.sh: no Loghub 2k folder at $DATA" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import drain3" 2>/dev/null || "$VENV/bin/pip" install -q drain3 >&2
PY="$VENV/bin/python"
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
has() { "$VIGIL" "$@" --help > /dev/null 2>&1; }
for cmd in "logs parse" "eval parse"; do
  # shellcheck disable=SC2086 # split "logs parse" into its two words
  if ! has $cmd; then
    echo "drain_bench.sh: this vigil build has no 'vigil $cmd' command (not built yet?);" \
      "nothing to compare." >&2
    echo "drain3 alone: $PY bench/drain3_bench.py accuracy $DATA" >&2
    exit 1
  fi
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$VIGIL" eval parse --loghub "$DATA" --json > "$WORK/vigil-accuracy.json"
"$PY" bench/drain3_bench.py accuracy "$DATA" > "$WORK/drain3-accuracy.ndjson"

"$PY" bench/drain3_bench.py bigfile "$DATA" "$WORK/big.log" "$LINES" > /dev/null
for i in $(seq "$RUNS"); do
  "$VIGIL" logs parse "$WORK/big.log" --json > "$WORK/vigil-speed-$i.json"
  "$PY" bench/drain3_bench.py speed "$WORK/big.log" > "$WORK/drain3-speed-$i.json"
done

"$PY" - "$WORK" "$RUNS" "$LINES" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'PY'
import json, sys
work, runs, lines, date, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
vigil = json.load(open(f"{work}/vigil-accuracy.json"))["systems"]
drain3 = {r["system"]: r for r in map(json.loads, open(f"{work}/drain3-accuracy.ndjson"))}
version = next(iter(drain3.values()))["drain3_version"]
for v in vigil:  # both sides must have read the same lines of the same systems
    d = drain3.get(v["system"])
    assert d is not None, f"drain3_bench.py did not run {v['system']}"
    assert v["lines"] == d["lines"], f"{v['system']}: vigil read {v['lines']} lines, drain3 {d['lines']}"
    if v["true_templates"] != d["true_templates"]:
        print(f"warning: {v['system']}: vigil counts {v['true_templates']} true templates, "
              f"drain3_bench.py {d['true_templates']}", file=sys.stderr)
for name in sorted(set(drain3) - {v["system"] for v in vigil}):
    print(f"warning: {name}: run by drain3_bench.py only, left out", file=sys.stderr)

def cell(x):
    return "–" if x is None else f"{x:.4f}"

def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None

sizes = sorted({v["lines"] for v in vigil})
print(f"Loghub 2k grouping accuracy ({'/'.join(map(str, sizes))} lines of the Content column per "
      f"system); drain3 {version} with depth 4, similarity 0.5, 100 children, IP/hex/number masks; "
      f"{date}, nproc {cores}:\n")
print("| system | Vigil (defaults) | Vigil tuned | drain3 | Drain published | templates: truth / Vigil / drain3 |")
print("|---|---|---|---|---|---|")
cols = {"vigil": [], "tuned": [], "drain3": [], "published": []}
for v in vigil:
    d = drain3[v["system"]]
    row = {"vigil": v["accuracy"], "tuned": v["accuracy_tuned"], "drain3": d["accuracy"],
           "published": v.get("published")}
    for k, x in row.items():
        cols[k].append(x)
    print(f"| {v['system']} | {cell(row['vigil'])} | {cell(row['tuned'])} | {cell(row['drain3'])} | "
          f"{cell(row['published'])} | {v['true_templates']} / {v['templates']} / {d['templates']} |")
print(f"| **mean** | **{cell(mean(cols['vigil']))}** | **{cell(mean(cols['tuned']))}** | "
      f"**{cell(mean(cols['drain3']))}** | **{cell(mean(cols['published']))}** | |")

def median_run(prefix):
    """The run with the median lines/s of the `runs` runs."""
    rs = sorted((json.load(open(f"{work}/{prefix}-{i}.json")) for i in range(1, runs + 1)),
                key=lambda r: r["lines_per_second"])
    for r in rs:
        assert r["lines"] == lines, f"{prefix}: {r['lines']} lines mined, {lines} written"
    return rs[len(rs) // 2]

vs, ds = median_run("vigil-speed"), median_run("drain3-speed")
ratio = vs["lines_per_second"] / ds["lines_per_second"]
print(f"\nMining speed on {lines:,} lines (the Content of all {len(vigil)} systems concatenated and "
      f"repeated), one pass a run, median of {runs} runs, reading the file excluded; {date}, nproc {cores}:\n")
print("| miner | lines/s | seconds | templates | vs drain3 |")
print("|---|---|---|---|---|")
print(f"| Vigil `logs parse` | {vs['lines_per_second']:,.0f} | {vs['seconds']:.2f} | {vs['templates']} | {ratio:.1f}× |")
print(f"| drain3 {ds['drain3_version']} (Python {ds['python']}) | {ds['lines_per_second']:,.0f} | "
      f"{ds['seconds']:.2f} | {ds['templates']} | 1.0× |")
print(f"\nspeed ratio (Vigil / drain3): {ratio:.1f}×")
PY
