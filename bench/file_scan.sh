#!/usr/bin/env bash
# Static analysis + YARA + model throughput, Vigil against the Python pipeline a user would
# otherwise write (pefile + yara-python + scikit-learn), in the same run, on the same files.
#
#   bench/file_scan.sh [REPEAT] [CLAMP_CSV]
#
# Corpus: Debian's clamav-testfiles executables and the PE launchers shipped in pip's and
# setuptools' wheels (downloaded from PyPI into a temporary folder), each listed REPEAT
# times (default 20). Both sides load the same YARA rules (rules/yara/) and a 200-tree
# random forest trained on ClaMP; both run on one thread, and the timings include start-up
# (rule compilation, model loading). Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${1:-20}
CSV=${2:-../shared/data/clamp/ClaMP_Raw-train.csv}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/vigil/target}"
VENV="$HOME/.cache/vigil/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import pefile, yara, sklearn" 2>/dev/null \
  || "$VENV/bin/pip" install -q pefile yara-python scikit-learn >&2
[ -d /usr/share/clamav-testfiles ] || apt-get install -y -q clamav-testfiles >/dev/null
cargo build --release -q -p vigil
VIGIL="$CARGO_TARGET_DIR/release/vigil"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && "$VENV/bin/pip" download -q --no-deps "setuptools<70" pip -d wheels >&2 \
  && for w in wheels/*.whl; do unzip -o -q "$w" '*.exe' -d x 2>/dev/null || true; done)
find /usr/share/clamav-testfiles -name '*.exe' > "$WORK/corpus.txt"
find "$WORK/x" -name '*.exe' >> "$WORK/corpus.txt"
for _ in $(seq "$REPEAT"); do cat "$WORK/corpus.txt"; done > "$WORK/files.txt"
N=$(wc -l < "$WORK/files.txt")
BYTES=$(xargs stat -c %s < "$WORK/files.txt" | awk '{s+=$1} END {print s}')
"$VIGIL" file train --dataset "$CSV" --out "$WORK/model.json" --cv 0 > /dev/null

T0=$(date +%s.%N)
xargs "$VIGIL" scan --model "$WORK/model.json" --ndjson < "$WORK/files.txt" > "$WORK/vigil.ndjson"
T1=$(date +%s.%N)

"$VENV/bin/python" - "$CSV" "$WORK" <<'PY' > "$WORK/python.txt"
import csv, glob, sys, time
import numpy as np, pefile, yara
from sklearn.ensemble import RandomForestClassifier
src, work = sys.argv[1], sys.argv[2]
rows = list(csv.reader(open(src)))
h = rows[0]; keep = [i for i, c in enumerate(h) if c not in ("e_res", "e_res2", "class")]
X = np.array([[float(r[i]) for i in keep] for r in rows[1:]], dtype=np.float32)
y = np.array([int(r[h.index("class")]) for r in rows[1:]])
model = RandomForestClassifier(n_estimators=200, random_state=0).fit(X, y)
FIELDS = [("DOS_HEADER", f) for f in "e_magic e_cblp e_cp e_crlc e_cparhdr e_minalloc e_maxalloc e_ss e_sp e_csum e_ip e_cs e_lfarlc e_ovno e_oemid e_oeminfo e_lfanew".split()]
FIELDS += [("FILE_HEADER", f) for f in "Machine NumberOfSections CreationYear PointerToSymbolTable NumberOfSymbols SizeOfOptionalHeader Characteristics".split()]
FIELDS += [("OPTIONAL_HEADER", f) for f in "Magic MajorLinkerVersion MinorLinkerVersion SizeOfCode SizeOfInitializedData SizeOfUninitializedData AddressOfEntryPoint BaseOfCode BaseOfData ImageBase SectionAlignment FileAlignment MajorOperatingSystemVersion MinorOperatingSystemVersion MajorImageVersion MinorImageVersion MajorSubsystemVersion MinorSubsystemVersion SizeOfImage SizeOfHeaders CheckSum Subsystem DllCharacteristics SizeOfStackReserve SizeOfStackCommit SizeOfHeapReserve SizeOfHeapCommit LoaderFlags NumberOfRvaAndSizes".split()]
import datetime, hashlib, math, collections
files = open(f"{work}/files.txt").read().split()
t0 = time.perf_counter()
rules = yara.compile(filepaths={p.split("/")[-1]: p for p in glob.glob("rules/yara/*.yar")})
out = 0
for path in files:
    data = open(path, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    matches = rules.match(data=data, timeout=5)
    try:
        pe = pefile.PE(data=data)  # full parse: imports, exports, resources
        feats = []
        for hdr, f in FIELDS:
            if f == "CreationYear":
                feats.append(datetime.datetime.fromtimestamp(pe.FILE_HEADER.TimeDateStamp, datetime.timezone.utc).year)
            else:
                feats.append(getattr(getattr(pe, hdr), f, 0))
        sections = [(s.Name, s.get_entropy()) for s in pe.sections]
        p = model.predict_proba(np.array([feats], dtype=np.float32))[0, 1]
    except pefile.PEFormatError:
        p = None
    out += 1
print(time.perf_counter() - t0)
PY
T2=$(date +%s.%N)
PY_LOOP=$(cat "$WORK/python.txt")
python3 - "$N" "$BYTES" "$T0" "$T1" "$T2" "$PY_LOOP" "$(wc -l < "$WORK/vigil.ndjson")" "$(wc -l < "$WORK/corpus.txt")" "$REPEAT" <<'PY'
import sys
n, b, t0, t1, t2, loop, done, corpus, repeat = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:7]), int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
assert done == n, f"vigil reported {done} of {n} files"
v = t1 - t0
print(f"{n} files, {b/1e6:.1f} MB ({corpus} executables, each {repeat} times), one thread each:\n")
print("| pipeline | seconds | files/s | MB/s |")
print("|---|---|---|---|")
print(f"| `vigil scan --model` (static + YARA + forest, incl. start-up) | {v:.2f} | {n/v:.0f} | {b/1e6/v:.1f} |")
print(f"| Python: pefile + yara-python + scikit-learn (rule compile + loop; training excluded) | {loop:.2f} | {n/loop:.0f} | {b/1e6/loop:.1f} |")
print(f"\nThroughput ratio (Vigil / Python): {loop / v:.1f}x")
PY
