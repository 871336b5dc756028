#!/usr/bin/env python3
"""The Sigma baseline Vigil's rule engine is measured against: the "Zircolite approach".

SigmaHQ rules are converted with pySigma and pysigma-backend-sqlite (output format
"zircolite"), through the Sysmon pipeline followed by the Windows log-source pipeline, as
the backend documents (`sysmon_pipeline() + windows_logsource_pipeline()`) and as Zircolite
orders them. Each regression case's .evtx is parsed with PyPI's `evtx` (pyevtx-rs), every
record flattened the way Zircolite flattens EVTX JSON, and loaded into an in-memory SQLite
table `logs`; then every converted Windows rule's SELECT runs over it. A case passes when its
named rule returns a row.

Flattening (Zircolite's JSONFlattener with its default fieldMappings, EVTX input):
  * every leaf of the record's JSON becomes one column named by the last path component
    with non-alphanumerics dropped (Event.EventData.Image -> Image,
    Event.System.TimeCreated.#attributes.SystemTime -> SystemTime, ...), except the renames
    that matter: Event.System.Provider.#attributes.Name -> Provider_Name,
    Event.System.EventID.#text -> EventID, Event.EventData.Data.#text -> Message;
  * paths containing "xmlns" are dropped, as are null and "" values; lists become str(list);
  * Hash, Hashes and ConfigurationFileHash are also split on "," and "=" into extra columns
    (SHA1, MD5, SHA256, IMPHASH, ...);
  * an OriginalLogfile column carries the .evtx file name;
  * a column is INTEGER when its first value is an int (EventID is a number), else
    TEXT COLLATE NOCASE, so "=" is case-insensitive like Sigma (LIKE already is, for ASCII).
Table: `CREATE TABLE logs (row_id INTEGER PRIMARY KEY AUTOINCREMENT, ...)`, widened with every
field the loaded rules name (the backend's `required_fields`) as NULL TEXT COLLATE NOCASE
columns -- what Zircolite does and the backend's README asks of a consumer, so a rule naming
a field the events lack reads it as absent instead of failing with "no such column" --, then
`CREATE INDEX ON logs (EventID)`, Zircolite's in-memory PRAGMAs, and a Python REGEXP function
(NULL -> no match) for |re.

Timing. seconds_match is the matching phase only: running every rule's SQL over tables
already loaded and fetching the matching rows. Rule loading and conversion
(seconds_rules_parse, seconds_convert), EVTX parsing (seconds_parse), flattening
(seconds_flatten) and building the SQLite tables (seconds_load) are measured and reported
separately. Each matching pass is repeated --repeat times and the median reported; Python's
cyclic GC is frozen first so it does not pause a pass to walk pySigma's objects.
records_per_second = records across all cases / seconds_match, every Windows rule run
against every record.

The backend emits `SELECT * FROM logs WHERE <clause>`. Zircolite fetches whole rows because it
prints them; deciding which rule matches needs only the row id, and with ~260 columns `*`
more than triples the time (SQLite expands it at every compile, Python builds a description
of every column at every execute). The WHERE clause is run untouched with `SELECT row_id`;
--select-star runs the backend's SQL as emitted.

Four ways of running the same queries over the same rows (checked to agree on every match):
  shared             the headline, Zircolite's own way: every case's records in one table, a
                     _case column saying whose, each rule's SQL run once over all of them.
                     SQLite compiles each statement again in every pass (2,800+ statements
                     cycle through the sqlite3 module's 128-entry cache), as every Zircolite
                     run does.
  shared-prepared    the same with every statement compiled once beforehand (untimed,
                     seconds_prepare) and kept in a large enough statement cache: execution
                     alone, the baseline's best case.
  per-case           a fresh in-memory database per case, every statement compiled and run on
                     it, as one Zircolite run per .evtx would. With 1-7 records per case this
                     measures SQLite's statement compilation, 141 times over, not scanning.
  per-case-prepared  one connection whose table (union schema) is emptied and refilled per
                     case, statements compiled once; per-query call overhead dominates.
"""

import argparse
import gc
import json
import os
import platform
import re
import sqlite3
import statistics
import sys
import time
from collections import Counter
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

import evtx
import yaml
from sigma.backends.sqlite import sqliteBackend
from sigma.collection import SigmaCollection
from sigma.pipelines.sysmon import sysmon_pipeline
from sigma.pipelines.windows import windows_logsource_pipeline
from sigma.rule import SigmaRule

SHARED = os.environ.get("VIGIL_SHARED_DATA", "/work/shared/data")
SIGMA = Path(SHARED) / "sigma"
DEFAULT_RULES = [SIGMA / d for d in ("rules", "rules-emerging-threats", "rules-threat-hunting")]
DEFAULT_REGRESSION = SIGMA / "regression_data"

# Zircolite's fieldMappings entries whose target is not simply the last path component.
MAPPINGS = {
    "Event.System.Provider.#attributes.Name": "Provider_Name",
    "Event.System.EventID.#text": "EventID",
    "Event.EventData.Data.#text": "Message",
}
EXCLUSIONS = ("xmlns",)
SPLIT = {"hash": (",", "="), "hashes": (",", "="), "configurationfilehash": (",", "=")}
INT64_MAX = 9223372036854775807
PRAGMAS = (  # Zircolite's settings for an in-memory database
    "journal_mode = OFF", "synchronous = OFF", "cache_size = -128000",
    "locking_mode = EXCLUSIVE", "temp_store = MEMORY", "page_size = 4096",
)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def versions():
    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for pkg in ("pysigma", "pysigma-backend-sqlite", "pysigma-pipeline-sysmon",
                "pysigma-pipeline-windows", "evtx"):
        out[pkg] = version(pkg)
    return out


# ---------------------------------------------------------------- rules

def reason_of(exc):
    """A failure reason without the rule-specific details, for grouping."""
    msg = str(exc).split("\n")[0]
    msg = re.sub(r"'[^']*'", "'…'", msg)
    msg = re.sub(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b", "<id>", msg)
    return f"{type(exc).__name__}: {msg[:160]}"


def load_rules(dirs):
    """Parse every rule file, convert each rule once. Returns (converted, stats)."""
    t0 = time.perf_counter()
    paths = sorted(p for d in dirs for p in Path(d).rglob("*.yml"))
    collection = SigmaCollection.load_ruleset([str(p) for p in paths], collect_errors=True)
    t_parse = time.perf_counter() - t0
    backend = sqliteBackend(sysmon_pipeline() + windows_logsource_pipeline())
    backend.init_processing_pipeline("zircolite")
    converted, rejected = [], Counter()
    rejected_by_id, total, windows_total = {}, 0, 0
    for rule in collection:
        if not isinstance(rule, SigmaRule):
            continue  # none in SigmaHQ's three folders today
        total += 1
        product = rule.logsource.product if rule.logsource else None
        windows_total += product == "windows"
        rid = str(rule.id) if rule.id else ""
        if rule.errors:
            reason = reason_of(rule.errors[0])
        else:
            try:
                out = backend.convert_rule(rule, "zircolite")
                reason = None if out else "no query produced"
            except Exception as e:  # noqa: BLE001 -- pySigma raises many kinds
                reason = reason_of(e)
        if reason:
            rejected[reason] += 1
            rejected_by_id[rid] = reason
            continue
        for entry in out:
            entry["_product"] = product
        converted.append((rid, product, out))
    t_convert = time.perf_counter() - t0 - t_parse
    stats = {
        "rule_files": len(paths), "rules_total": total, "rules_converted": len(converted),
        "rules_rejected": sum(rejected.values()), "rejected_reasons": rejected.most_common(),
        "windows_rules_total": windows_total, "rejected_by_id": rejected_by_id,
        "seconds_rules_parse": t_parse, "seconds_convert": t_convert,
    }
    return converted, stats


# ---------------------------------------------------------------- records

def alnum(s):
    return "".join(c for c in s if c.isalnum())


def flatten(record, filename):
    """One EVTX JSON record to Zircolite's flat row (column name -> value)."""
    record["OriginalLogfile"] = filename
    row, seen = {}, set()

    def put(key, value):
        low = key.lower()
        if low in seen and key not in row:  # same column, other case: first spelling wins
            key = next(k for k in row if k.lower() == low)
        seen.add(low)
        row[key] = value

    stack = [(record, ())]
    while stack:
        obj, path = stack.pop()
        if isinstance(obj, dict):
            for k, v in obj.items():
                stack.append((v, path + (k,)))
            continue
        raw = ".".join(path)
        if any(x in raw for x in EXCLUSIONS):
            continue
        value = str(obj) if isinstance(obj, list) else obj
        if value is None or value == "":
            continue
        if isinstance(value, int) and abs(value) > INT64_MAX:
            value = str(value)
        key = MAPPINGS.get(raw) or alnum(path[-1] if path else "")
        if not key:
            continue
        split = SPLIT.get(key.lower())
        if split and isinstance(value, str):
            for part in value.split(split[0]):
                kv = part.split(split[1])
                if len(kv) == 2 and kv[0]:
                    put(kv[0], kv[1])
        put(key, value)
    return row


def load_cases(root):
    """Every case under root: name, expected rule id, .evtx (or None)."""
    cases = []
    for info in sorted(Path(root).rglob("info.yml")):
        meta = yaml.safe_load(info.read_text())
        rid = str(meta["rule_metadata"][0]["id"])
        evtxs = sorted(info.parent.glob("*.evtx"))
        cases.append({"case": str(info.parent.relative_to(root)), "rule_id": rid,
                      "evtx": evtxs[0] if evtxs else None})
    return cases


def parse_cases(cases):
    """Parse each .evtx to JSON records, then flatten; time the two separately."""
    t_parse = t_flat = 0.0
    for case in cases:
        case["rows"] = []
        if case["evtx"] is None:
            continue
        t0 = time.perf_counter()
        raw = [json.loads(r["data"]) for r in evtx.PyEvtxParser(str(case["evtx"])).records_json()]
        t1 = time.perf_counter()
        case["rows"] = [flatten(r, case["evtx"].name) for r in raw]
        t2 = time.perf_counter()
        t_parse += t1 - t0
        t_flat += t2 - t1
    return t_parse, t_flat


# ---------------------------------------------------------------- SQLite

@lru_cache(maxsize=4096)
def _regex(pattern):
    return re.compile(pattern)


def udf_regexp(pattern, value):
    if value is None:
        return 0
    return 1 if _regex(pattern).search(value if isinstance(value, str) else str(value)) else 0


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def connect(cached_statements=128):
    conn = sqlite3.connect(":memory:", isolation_level=None, cached_statements=cached_statements)
    for p in PRAGMAS:
        conn.execute(f"PRAGMA {p}")
    conn.create_function("regexp", 2, udf_regexp, deterministic=True)
    return conn


def schema_of(row_sets, required):
    """Column -> SQL type, first-seen type wins, case-insensitively; then the rules' fields."""
    cols = {}
    for rows in row_sets:
        for row in rows:
            for k, v in row.items():
                if k.lower() not in cols:
                    cols[k.lower()] = (k, "INTEGER" if isinstance(v, int) else "TEXT COLLATE NOCASE")
    for f in required:
        if f.lower() not in cols and f.lower() not in ("rowid", "row_id"):
            cols[f.lower()] = (f, "TEXT COLLATE NOCASE")
    return list(cols.values())


def build(conn, columns, extra=()):
    defs = ", ".join(f"{quote(n)} {t}" for n, t in list(columns) + list(extra))
    conn.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY AUTOINCREMENT, {defs})")
    names = {n.lower() for n, _ in columns}
    if "eventid" in names:
        conn.execute('CREATE INDEX "idx_eventid" ON "logs" ("EventID")')


def insert(conn, rows, extra=None):
    """Batch insert like Zircolite: one statement over the union of the rows' keys."""
    if not rows:
        return
    keys = sorted({k for r in rows for k in r})
    if extra:
        keys.append(extra[0])
    cols = ", ".join(quote(k) for k in keys)
    sql = f"INSERT INTO logs ({cols}) VALUES ({', '.join('?' * len(keys))})"
    values = []
    for r in rows:
        v = [r.get(k) for k in (keys[:-1] if extra else keys)]
        if extra:
            v.append(extra[1])
        values.append(v)
    conn.execute("BEGIN")
    conn.executemany(sql, values)
    conn.execute("COMMIT")


def run_queries(cur, rules, errors):
    """Run every rule's SQL; return ([(rule id, rows, column names)] for each query that
    returned rows, number of rows fetched)."""
    fired, fetched = [], 0
    for rid, queries in rules:
        for sql in queries:
            try:
                rows = cur.execute(sql).fetchall()
            except sqlite3.Error as e:
                errors[(rid, reason_of(e))] += 1
                continue
            if rows:
                fetched += len(rows)
                fired.append((rid, rows, [d[0] for d in cur.description]))
    return fired, fetched


PREFIX = "SELECT * FROM logs WHERE "


def project(rules, columns):
    """The backend's `SELECT * FROM logs WHERE <clause>` narrowed to `SELECT <columns> ...`:
    deciding which rules match needs the row ids, not every column of every matched row
    (Zircolite fetches them all because it prints the events). The WHERE clause is untouched.
    None keeps SELECT *."""
    if columns is None:
        return rules
    out = []
    for rid, queries in rules:
        assert all(q.startswith(PREFIX) for q in queries), f"{rid}: unexpected SQL shape"
        out.append((rid, [f"SELECT {columns} FROM logs WHERE " + q[len(PREFIX):] for q in queries]))
    return out


def _timed_passes(cur, rules, repeat):
    """Run every rule `repeat` times over the loaded table; errors and matches of the first."""
    times, errors, fired = [], Counter(), None
    for i in range(repeat):
        t0 = time.perf_counter()
        f, _ = run_queries(cur, rules, errors if i == 0 else Counter())
        times.append(time.perf_counter() - t0)
        fired = f if fired is None else fired
    return times, errors, fired


def mode_per_case(cases, rules, required, repeat, prepared, star):
    """A table per case. Unprepared: a fresh database per case, as one Zircolite run per .evtx
    would do, so every statement is compiled again for every case. Prepared: one connection
    whose table (union schema) is emptied and refilled per case, statements compiled once."""
    rules = project(rules, None if star else "row_id")
    n_queries = sum(len(q) for _, q in rules)
    times, fired_by_case, errors, t_load, t_prepare = [0.0] * repeat, {}, Counter(), 0.0, None
    conn = None
    if prepared:
        t0 = time.perf_counter()
        conn = connect(cached_statements=n_queries + 64)
        build(conn, schema_of([c["rows"] for c in cases], required))
        t_load += time.perf_counter() - t0
        t0 = time.perf_counter()
        run_queries(conn.cursor(), rules, Counter())  # compiles every statement into the cache
        t_prepare = time.perf_counter() - t0
    for case in cases:
        if not case["rows"]:
            continue
        t0 = time.perf_counter()
        if prepared:
            conn.execute("DELETE FROM logs")
        else:
            conn = connect()
            build(conn, schema_of([case["rows"]], required))
        insert(conn, case["rows"])
        t_load += time.perf_counter() - t0
        ts, errs, fired = _timed_passes(conn.cursor(), rules, repeat)
        times = [a + b for a, b in zip(times, ts)]
        errors.update(errs)
        fired_by_case[case["case"]] = {f[0] for f in fired}
        if not prepared:
            conn.close()
    if prepared:
        conn.close()
    return {"times": times, "fired": fired_by_case, "errors": errors, "seconds_load": t_load,
            "seconds_prepare": t_prepare, "queries_run": n_queries * len(fired_by_case)}


def mode_shared(cases, rules, required, repeat, prepared, star):
    """Zircolite's own way: every case's records in one table (a _case column says whose),
    each rule's SQL run once over all of them. Unprepared, each pass compiles every statement
    again (2,800+ statements cycle through the 128-entry statement cache), as every Zircolite
    run does; prepared, they are compiled once in an untimed pass and the timing is execution."""
    rules = project(rules, None if star else "row_id, _case")
    n_queries = sum(len(q) for _, q in rules)
    t0 = time.perf_counter()
    conn = connect(cached_statements=n_queries + 64 if prepared else 128)
    build(conn, schema_of([c["rows"] for c in cases], required), [("_case", "INTEGER")])
    for i, case in enumerate(cases):
        insert(conn, case["rows"], ("_case", i))
    t_load = time.perf_counter() - t0
    cur = conn.cursor()
    t_prepare = None
    if prepared:
        t0 = time.perf_counter()
        run_queries(cur, rules, Counter())
        t_prepare = time.perf_counter() - t0
    times, errors, fired = _timed_passes(cur, rules, repeat)
    fired_by_case = {c["case"]: set() for c in cases if c["rows"]}
    for rid, rows, names in fired:
        case_col = names.index("_case")
        for row in rows:
            fired_by_case[cases[row[case_col]]["case"]].add(rid)
    conn.close()
    return {"times": times, "fired": fired_by_case, "errors": errors, "seconds_load": t_load,
            "seconds_prepare": t_prepare, "queries_run": n_queries}


MODES = {
    "shared": lambda *a, **k: mode_shared(*a, prepared=False, **k),
    "shared-prepared": lambda *a, **k: mode_shared(*a, prepared=True, **k),
    "per-case": lambda *a, **k: mode_per_case(*a, prepared=False, **k),
    "per-case-prepared": lambda *a, **k: mode_per_case(*a, prepared=True, **k),
}


# ---------------------------------------------------------------- scoring

def score(cases, fired_by_case, loaded_ids, rejected_by_id, known_ids):
    """(passed, failures, mean other rules fired per evaluated case, their total, Counter of
    the rule ids that fired on a case not their own)."""
    failures, noise, passed, noisy = [], [], 0, Counter()
    for case in cases:
        rid = case["rule_id"]
        if case["evtx"] is None:
            failures.append({"case": case["case"], "rule_id": rid, "reason": "no .evtx in the case"})
            continue
        fired = fired_by_case.get(case["case"], set())
        noise.append(len(fired - {rid}))
        noisy.update(fired - {rid})
        if rid in fired:
            passed += 1
            continue
        if rid in rejected_by_id:
            reason = f"rule not converted: {rejected_by_id[rid]}"
        elif rid not in known_ids:
            reason = "rule id not in the loaded rule folders"
        elif rid not in loaded_ids:
            reason = "rule is not a Windows rule (not run)"
        else:
            reason = "rule did not fire"
        failures.append({"case": case["case"], "rule_id": rid, "reason": reason})
    return passed, failures, (sum(noise) / len(noise) if noise else 0.0), sum(noise), noisy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", nargs="+", default=[str(d) for d in DEFAULT_RULES])
    ap.add_argument("--regression", default=str(DEFAULT_REGRESSION))
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeat", type=int, default=3, help="matching-phase repeats (median)")
    ap.add_argument("--per-case-repeat", type=int, default=1,
                    help="repeats for the slow per-case mode (at most --repeat)")
    ap.add_argument("--modes", default="shared,shared-prepared,per-case,per-case-prepared",
                    help=f"comma-separated, of {', '.join(MODES)}; the first is the headline")
    ap.add_argument("--select-star", action="store_true",
                    help="run the backend's SELECT * as is (Zircolite fetches whole rows to "
                         "print them); default selects only the row id")
    ap.add_argument("--no-widen", action="store_true",
                    help="do not add the rules' fields as NULL columns: a rule naming a field "
                         "no event has then fails with 'no such column' (older setups)")
    args = ap.parse_args()
    t_start = time.perf_counter()

    log(f"sigma_baseline: converting rules from {len(args.rules)} folder(s)")
    converted, rstats = load_rules(args.rules)
    windows = [(rid, [q for e in out for q in e["rule"]]) for rid, product, out in converted
               if product == "windows"]
    required = sorted({f for _, p, out in converted if p == "windows"
                       for e in out for f in e.get("required_fields", [])}, key=str.lower)
    if args.no_widen:
        required = []
    loaded_ids = {rid for rid, _ in windows}
    known_ids = loaded_ids | {rid for rid, _, _ in converted} | set(rstats["rejected_by_id"])
    log(f"sigma_baseline: {rstats['rules_converted']}/{rstats['rules_total']} converted, "
        f"{len(windows)} Windows rules run, {len(required)} fields they name")

    cases = load_cases(args.regression)
    t_parse, t_flat = parse_cases(cases)
    records = sum(len(c["rows"]) for c in cases)
    log(f"sigma_baseline: {len(cases)} cases, {records} records parsed")

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        ap.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    # Python's cyclic GC would otherwise stop the matching phase now and then to walk the
    # hundreds of thousands of pySigma objects left from conversion; Vigil has no such pause.
    gc.collect()
    gc.freeze()
    results = {}
    for m in modes:
        repeat = min(args.repeat, args.per_case_repeat) if m == "per-case" else args.repeat
        log(f"sigma_baseline: matching, mode {m}, {repeat} repeat(s)")
        r = MODES[m](cases, windows, required, max(repeat, 1), star=args.select_star)
        r["repeat"] = max(repeat, 1)
        r["seconds_match"] = statistics.median(r["times"])
        r["score"] = score(cases, r["fired"], loaded_ids, rstats["rejected_by_id"], known_ids)
        results[m] = r
    head = results[modes[0]]
    passed, failures, noise, noise_total, noisy = head["score"]
    titles = {rid: out[0]["title"] for rid, _, out in converted}
    agree = all(r["fired"] == head["fired"] for r in results.values())
    evaluated = sum(1 for c in cases if c["rows"])

    def mode_summary(r):
        return {"seconds_match": r["seconds_match"], "seconds_match_runs": r["times"],
                "records_per_second": records / r["seconds_match"] if r["seconds_match"] else None,
                "queries_run_per_pass": r["queries_run"], "seconds_load": r["seconds_load"],
                "seconds_prepare": r["seconds_prepare"], "repeat": r["repeat"],
                "passed": r["score"][0]}

    query_errors, missing = Counter(), Counter()
    for rid, reason in head["errors"]:
        m = re.search(r"no such column: (\S+)", reason)
        if m:
            missing[m.group(1)] += 1
            reason = "OperationalError: no such column"
        query_errors[reason] += 1
    out = {
        "tool": "pySigma + pysigma-backend-sqlite (zircolite format) over SQLite, evtx (pyevtx-rs)",
        "mode": modes[0],
        "cases": len(cases),
        "cases_with_evtx": evaluated,
        "passed": passed,
        "pass_rate": passed / len(cases) if cases else 0.0,
        "failures": failures,
        "noise": noise,
        "noise_total": noise_total,
        "noise_top": [{"rule_id": k, "title": titles.get(k, ""), "cases": n}
                      for k, n in noisy.most_common(10)],
        "rule_files": rstats["rule_files"],
        "rules_total": rstats["rules_total"],
        "rules_converted": rstats["rules_converted"],
        "rules_rejected": rstats["rules_rejected"],
        "rejected_reasons": [{"reason": k, "rules": n} for k, n in rstats["rejected_reasons"]],
        "windows_rules_total": rstats["windows_rules_total"],
        "rules_loaded": len(windows),
        "queries_per_case": sum(len(q) for _, q in windows),
        "rule_fields_widened": len(required),
        "query_errors": [{"reason": k, "queries": n} for k, n in query_errors.most_common()],
        "missing_columns": [{"column": k, "queries": n} for k, n in missing.most_common(20)],
        "records": records,
        "seconds_match": head["seconds_match"],
        "seconds_match_note": f"matching phase only, mode {modes[0]}: every Windows rule's SQL "
                              "run (SQLite statement compilation included unless the mode is "
                              "*-prepared) and its rows fetched, over tables already loaded; "
                              f"median of {head['repeat']} pass(es); excludes rule conversion, "
                              "EVTX parsing, flattening and table loading",
        "select": "*" if args.select_star else "row id",
        "widened": not args.no_widen,
        "records_per_second": records / head["seconds_match"] if head["seconds_match"] else None,
        "seconds_rules_parse": rstats["seconds_rules_parse"],
        "seconds_convert": rstats["seconds_convert"],
        "seconds_parse": t_parse,
        "seconds_flatten": t_flat,
        "seconds_load": head["seconds_load"],
        "modes": {m: mode_summary(r) for m, r in results.items()},
        "modes_agree": agree,
        "versions": versions(),
    }
    out["seconds_total"] = time.perf_counter() - t_start
    if args.json:
        print(json.dumps(out, indent=2))
        return
    v = out["versions"]
    print("Sigma baseline: " + ", ".join(f"{k} {v[k]}" for k in v))
    print(f"rules: {out['rules_converted']}/{out['rules_total']} converted "
          f"({out['rules_rejected']} rejected); {out['rules_loaded']} Windows rules run "
          f"(of {out['windows_rules_total']})")
    for r in out["rejected_reasons"][:8]:
        print(f"  {r['rules']:4d}  {r['reason']}")
    for r in out["query_errors"]:
        print(f"  query error ({r['queries']} queries): {r['reason']}")
    if missing:
        print("    e.g. " + ", ".join(f"{k} ({n})" for k, n in missing.most_common(6)))
    print(f"cases: {passed}/{len(cases)} passed ({out['pass_rate']:.1%}); "
          f"noise {noise:.2f} other rules/case")
    for f in failures:
        print(f"  FAIL {f['case']}: {f['reason']}")
    print(f"records: {records}; conversion {out['seconds_rules_parse'] + out['seconds_convert']:.2f}s "
          f"(parse {out['seconds_rules_parse']:.2f}s + convert {out['seconds_convert']:.2f}s); "
          f"evtx parse {t_parse:.3f}s; flatten {t_flat:.3f}s")
    for m, s in out["modes"].items():
        extra = f", prepare {s['seconds_prepare']:.2f}s" if s["seconds_prepare"] is not None else ""
        print(f"match [{m}]: {s['seconds_match']:.3f}s -> {s['records_per_second']:,.0f} records/s "
              f"({s['queries_run_per_pass']:,} queries/pass; load {s['seconds_load']:.3f}s{extra}; passed {s['passed']})")
    print(f"modes agree on every match: {agree}; total {out['seconds_total']:.1f}s")


if __name__ == "__main__":
    main()
