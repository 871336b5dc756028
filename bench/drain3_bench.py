"""Python's drain3 on Loghub 2k, the baseline for Vigil's Drain log template miner.

    drain3_bench.py accuracy LOGHUB_DIR        one JSON object per system (NDJSON)
    drain3_bench.py bigfile LOGHUB_DIR OUT N   write N message lines for the speed test
    drain3_bench.py speed FILE                 one JSON object: lines, templates, lines/s

drain3 (IBM, PyPI) is the maintained Python version of Drain (He et al., ICWS 2017), the
algorithm `vigil logs parse` and `vigil eval parse` run. Both sides get the same input: the
`Content` column of Loghub's `<S>/<S>_2k.log_structured.csv` (the message with the header
already split off by Loghub), one message at a time, in file order. drain3 is set up as close
to Vigil's defaults as its options allow:

- tree depth 4, similarity threshold 0.5 (drain3's own default is 0.4), at most 100 children
  per tree node; no cluster limit, no extra delimiters, no persistence;
- masking before clustering, with the regexes of drain3's example drain3.ini, in this order:
  IPv4 addresses with an optional port, hex numbers (0x...), then decimal numbers. Vigil also
  masks UUIDs, paths and URLs; drain3 gets no masks for those (its example has none), so it
  sees those tokens raw. drain3's `parametrize_numeric_tokens` (on by default) also sends
  any token with a digit down the wildcard branch of the tree, as the original Drain does.

No per-system regexes or thresholds are given to drain3: the "published" Drain figures of
logpai/logparser come from hand-written per-system regexes and tuned thresholds, and compare
with Vigil's `accuracy_tuned`, not with this.

Accuracy is grouping accuracy (logpai/logparser's definition): a line is correct when the set
of lines in its parsed group (drain3 cluster) equals the set of lines with its ground-truth
`EventId`; accuracy = correct lines / all lines. A fresh TemplateMiner per system.

Speed: the file is read into memory first; then one pass of `TemplateMiner.add_log_message`
over every line, timed with perf_counter (masking + clustering, as Vigil's `seconds`).
"""
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from importlib.metadata import version
from pathlib import Path

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

# Loghub 2k systems, in the order `vigil eval parse` reports them; others found are appended.
SYSTEMS = ["HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "Linux", "Apache", "OpenSSH"]

# drain3's example drain3.ini patterns. Each is anchored on a non-alphanumeric neighbour (or
# the start/end of the message), so `blk_123` or `a1b2` stay whole. Order matters: IP before
# NUM (else the octets become four NUMs), HEX before NUM (else `0x1f` -> `<NUM>x1f`).
MASKS = [
    ("IP", r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d{1,5})?)((?=[^A-Za-z0-9])|$)"),
    ("HEX", r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)"),
    ("NUM", r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)"),
]


def new_miner():
    """A fresh drain3 TemplateMiner with the settings closest to Vigil's defaults."""
    config = TemplateMinerConfig()  # built in code: TemplateMiner() alone reads ./drain3.ini
    config.drain_depth = 4
    config.drain_sim_th = 0.5
    config.drain_max_children = 100
    config.drain_max_clusters = None
    config.masking_instructions = [MaskingInstruction(regex, name) for name, regex in MASKS]
    config.profiling_enabled = False
    return TemplateMiner(persistence_handler=None, config=config)


def systems(loghub):
    """(name, structured CSV path) of every Loghub 2k system under `loghub`."""
    found = {p.parent.name: p for p in Path(loghub).glob("*/*_2k.log_structured.csv")
             if p.name == f"{p.parent.name}_2k.log_structured.csv"}
    if not found:
        sys.exit(f"drain3_bench.py: no <S>/<S>_2k.log_structured.csv under {loghub}")
    order = [s for s in SYSTEMS if s in found] + sorted(set(found) - set(SYSTEMS))
    return [(s, found[s]) for s in order]


def read_structured(path):
    """(Content, EventId) of every row, in file order. The csv module, not pandas: no NaN
    for messages such as `NA`, no type guessing."""
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["Content"], row["EventId"]) for row in csv.DictReader(f)]


def grouping_accuracy(truth, parsed):
    """Fraction of lines whose parsed group is exactly their ground-truth group.

    A parsed group is exactly a truth group when all its lines share one EventId and it
    holds as many lines as that EventId has in all; then each of its lines is correct."""
    truth_size = Counter(truth)
    members = defaultdict(list)
    for event, group in zip(truth, parsed):
        members[group].append(event)
    correct = sum(len(events) for events in members.values()
                  if len(set(events)) == 1 and truth_size[events[0]] == len(events))
    return correct / len(truth)


def accuracy(loghub):
    for name, path in systems(loghub):
        rows = read_structured(path)
        miner = new_miner()
        add = miner.add_log_message
        t = time.perf_counter()
        clusters = [add(content)["cluster_id"] for content, _ in rows]
        took = time.perf_counter() - t
        truth = [event for _, event in rows]
        print(json.dumps({
            "system": name, "lines": len(rows), "true_templates": len(set(truth)),
            "templates": len(miner.drain.clusters),
            "accuracy": grouping_accuracy(truth, clusters),
            "seconds": took, "lines_per_second": len(rows) / took,
            "drain3_version": version("drain3")}), flush=True)


def bigfile(loghub, out, n):
    """Write `n` lines: the Content of every system (in SYSTEMS order) concatenated, repeated
    and cut at `n`. After the first round the templates are all known, so most of the run
    measures the steady state: masking, tree descent and matching against known clusters."""
    one_round = [content for _, path in systems(loghub) for content, _ in read_structured(path)]
    # One message per line: a message must not hold a line break (none in Loghub 2k does).
    assert not any("\n" in c or "\r" in c for c in one_round), "a Content value spans lines"
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for i in range(n):
            f.write(one_round[i % len(one_round)])
            f.write("\n")
    print(json.dumps({"file": str(out), "lines": n, "round_lines": len(one_round)}))


def read_lines(path):
    """Lines split on \\n only (as a line-oriented reader in Rust splits them), so that both
    sides count the same lines; str.splitlines would also split on \\x0b, \\x1c, U+2028..."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def speed(path):
    lines = read_lines(path)  # reading the file is not timed
    miner = new_miner()
    add = miner.add_log_message
    t = time.perf_counter()
    for line in lines:
        add(line)
    took = time.perf_counter() - t
    print(json.dumps({
        "lines": len(lines), "templates": len(miner.drain.clusters), "seconds": took,
        "lines_per_second": len(lines) / took, "drain3_version": version("drain3"),
        "python": sys.version.split()[0]}))


def main(argv):
    usage = __doc__.split("\n\n")[1]
    if len(argv) == 3 and argv[1] == "accuracy":
        accuracy(argv[2])
    elif len(argv) == 5 and argv[1] == "bigfile":
        bigfile(argv[2], argv[3], int(argv[4]))
    elif len(argv) == 3 and argv[1] == "speed":
        speed(argv[2])
    else:
        sys.exit(f"usage:\n{usage}")


if __name__ == "__main__":
    main(sys.argv)
