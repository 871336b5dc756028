#!/usr/bin/env bash
# Vigil's Sigma rule engine beside the Zircolite approach (pySigma + pysigma-backend-sqlite,
# rules as SQL over EVTX records in SQLite), in the same run, on SigmaHQ's rules and its
# regression cases.
#
#   bench/sigma.sh [SIGMA_DIR]     # default $VIGIL_SHARED_DATA/sigma (/work/shared/data/sigma)
#   REPEAT=5 bench/sigma.sh        # matching passes per side's timing (default 3)
#   SKIP_VIGIL=1 bench/sigma.sh    # the baseline alone
#   VIGIL_REPEAT=200 (default)     # Vigil matches each case's records this many times (one
#                                  # pass over 167 records takes ~3 ms: too short to time)
#
# Both sides load SIGMA_DIR/{rules,rules-emerging-threats,rules-threat-hunting} and run
# every case under SIGMA_DIR/regression_data (info.yml names the rule that must fire on the
# case's .evtx): `vigil eval sigma --json`, then bench/sigma_baseline.py --json. A case passes
# when its rule fires; noise is how many other rules fire on a case, on average.
# records/s is records across all cases / matching seconds with every rule loaded; rule
# loading/conversion and EVTX parsing are excluded on the baseline side (the baseline prints
# them separately). The baseline's headline is Zircolite's own way of running: all records in
# one SQLite table, each Windows rule's SQL compiled and run once over it; its other rows are
# the same queries with statements compiled beforehand (its best case) and per case (one
# database per .evtx). See bench/sigma_baseline.py for exactly what each measures.
# The machine is shared: compare the ratios, not the absolute times.
# Needs the bench venv (~/.cache/vigil/bench-venv); the baseline's packages are installed
# there at the pinned versions below if missing. Reads the rules in place (Detection Rule
# License); nothing is copied.
set -euo pipefail
cd "$(dirname "$0")/.."
SIGMA=${1:-${VIGIL_SHARED_DATA:-/work/shared/data}/sigma}
REPEAT=${REPEAT:-3}
RULES=("$SIGMA/rules" "$SIGMA/rules-emerging-threats" "$SIGMA/rules-threat-hunting")
REGRESSION="$SIGMA/regression_data"
for d in "${RULES[@]}" "$REGRESSION"; do
  [ -d "$d" ] || { echo "sigma.sh: no folder $d" >&2; exit 1; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
PINS=(pysigma==1.5.1 pysigma-backend-sqlite==2.0.0 pysigma-pipeline-sysmon==2.0.0
  pysigma-pipeline-windows==2.0.1 evtx==0.14.0)
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" - "${PINS[@]}" <<'PY' 2>/dev/null || "$VENV/bin/pip" install -q "${PINS[@]}" >&2
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, pin
PY
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

VIGIL_OK=1
if [ -z "${SKIP_VIGIL:-}" ]; then
  echo "## vigil eval sigma" >&2
  if ! cargo run --release -q -p vigil -- eval sigma --rules "${RULES[@]}" --regression "$REGRESSION" \
      --repeat "${VIGIL_REPEAT:-200}" --json > "$WORK/vigil.json" 2> "$WORK/vigil.err"; then
    VIGIL_OK=0
    echo "sigma.sh: 'vigil eval sigma' failed (not built yet?):" >&2
    tail -5 "$WORK/vigil.err" >&2
  fi
fi
echo "## baseline: pySigma + SQLite (bench/sigma_baseline.py)" >&2
"$PY" bench/sigma_baseline.py --rules "${RULES[@]}" --regression "$REGRESSION" \
  --repeat "$REPEAT" --json > "$WORK/baseline.json"

"$PY" - "$WORK" "$VIGIL_OK" "${SKIP_VIGIL:-}" "$(date -u +%Y-%m-%d)" "$(nproc)" <<'PY'
import json, os, sys
work, vigil_ok, skip, date, cores = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4], sys.argv[5]
b = json.load(open(f"{work}/baseline.json"))
v = json.load(open(f"{work}/vigil.json")) if not skip and vigil_ok else None
if v is not None:  # both sides must have run the same cases
    if v["cases"] != b["cases"]:
        print(f"warning: vigil ran {v['cases']} cases, the baseline {b['cases']}")
vrps = v["records_per_second"] if v else None

def pct(x):
    return f"{x:.1%}"

def ratio(rps):
    return f"{vrps / rps:,.1f}x" if vrps and rps else "n/a"

print(f"Sigma: {b['cases']} regression cases, {b['records']} records; {date}, {cores} cores (shared machine)")
print()
print("| side | rules loaded | rejected | cases passed | pass rate | noise | records/s | Vigil / this |")
print("|---|---|---|---|---|---|---|---|")
if v is not None:
    print(f"| Vigil | {v['rules_loaded']:,} | {v['rules_rejected']:,} | {v['passed']}/{v['cases']} "
          f"| {pct(v['pass_rate'])} | {v['noise']:.2f} | {vrps:,.0f} | 1x |")
else:
    print("| Vigil | n/a | n/a | n/a | n/a | n/a | n/a | |")
label = {"shared": "baseline (Zircolite: one table, SQL compiled and run once)",
         "shared-prepared": "baseline, statements precompiled (its best case)",
         "per-case": "baseline, one database per case",
         "per-case-prepared": "baseline, per case, statements precompiled"}
for mode, m in b["modes"].items():
    print(f"| {label.get(mode, mode)} | {b['rules_loaded']:,} | {b['rules_rejected']:,} "
          f"| {m['passed']}/{b['cases']} | {pct(m['passed'] / b['cases'])} | {b['noise']:.2f} "
          f"| {m['records_per_second']:,.0f} | {ratio(m['records_per_second'])} |")
print()
ver = b["versions"]
print("Baseline: " + ", ".join(f"{k} {ver[k]}" for k in ver) + ".")
print(f"Baseline rules: {b['rules_converted']:,} of {b['rules_total']:,} converted "
      f"({b['rules_rejected']} rejected: "
      + "; ".join(f"{r['rules']} {r['reason'].split(':')[0]}" for r in b["rejected_reasons"])
      + f"); the {b['rules_loaded']:,} Windows ones run. Conversion "
      f"{b['seconds_rules_parse'] + b['seconds_convert']:.1f}s, EVTX parse {b['seconds_parse']:.3f}s, "
      f"flatten {b['seconds_flatten']:.3f}s, matching {b['seconds_match']:.3f}s ({b['mode']}, median "
      f"of {b['modes'][b['mode']]['repeat']}).")
for f in b["failures"]:
    print(f"Baseline miss: {f['case']}: {f['reason']}")
if v is not None:
    for f in v.get("failures", []):
        print(f"Vigil miss: {f.get('case', f)}: {f.get('reason', '')}")
if not b["modes_agree"]:
    print("warning: the baseline's modes disagree on some matches")
print("records/s: records across all cases / matching seconds, all rules loaded. The machine is "
      "shared: compare ratios, not absolute times.")
PY
[ "$VIGIL_OK" = 1 ] || exit 1
