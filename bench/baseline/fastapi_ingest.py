"""Baseline for bench/ingest.sh: the ingest a user would otherwise write, in the seeds' own
stack (FastAPI + uvicorn, SQLite via the standard library), with the same guarantees as
Vigil: bearer token check, an answer only after the commit, WAL with synchronous=FULL,
idempotent by event.id, per-line errors for NDJSON. Same URLs and answer shapes as Vigil, so
the same load tools drive both.

Run: BASELINE_DB=/tmp/b.db BASELINE_TOKEN=secret uvicorn fastapi_ingest:app --workers 2
"""

import json
import os
import sqlite3
import threading
import uuid

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

DB = os.environ.get("BASELINE_DB", "baseline.db")
TOKEN = os.environ["BASELINE_TOKEN"]
app = FastAPI()
_local = threading.local()


def _conn() -> sqlite3.Connection:
    c = getattr(_local, "conn", None)
    if c is None:
        c = sqlite3.connect(DB, isolation_level=None, check_same_thread=False, timeout=30)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute(
            "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, ts TEXT, host TEXT, doc TEXT)"
        )
        _local.conn = c
    return c


def _check(req: Request) -> None:
    if req.headers.get("authorization") != f"Bearer {TOKEN}":
        raise HTTPException(status_code=401, detail="unauthorized")


def _normalize(e):
    if not isinstance(e, dict):
        raise ValueError("an event must be a JSON object")
    ev = e.setdefault("event", {})
    ev.setdefault("id", str(uuid.uuid4()))
    pid = (e.get("process") or {}).get("pid")
    if pid is not None and (not isinstance(pid, int) or pid < 0):
        raise ValueError("field `process.pid` must be a non-negative integer")
    return e


def _insert(events):
    c = _conn()
    c.execute("BEGIN IMMEDIATE")
    new = 0
    try:
        for e in events:
            cur = c.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
                (e["event"]["id"], e.get("@timestamp"), (e.get("host") or {}).get("name"),
                 json.dumps(e, separators=(",", ":"))),
            )
            new += cur.rowcount
        c.execute("COMMIT")
    except Exception:
        c.execute("ROLLBACK")
        raise
    return new


@app.post("/api/v1/events")
async def post_event(req: Request):
    _check(req)
    try:
        e = _normalize(json.loads(await req.body()))
    except ValueError as err:
        return JSONResponse({"error": {"code": "invalid_event", "message": str(err)}}, 400)
    new = await run_in_threadpool(_insert, [e])
    return JSONResponse({"accepted": 1, "ids": [e["event"]["id"]], "duplicates": 1 - new}, 202)


@app.post("/api/v1/events/bulk")
async def post_bulk(req: Request):
    _check(req)
    body = await req.body()
    events, errors = [], []
    for n, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            events.append(_normalize(json.loads(line)))
        except ValueError as err:
            errors.append({"line": n, "code": "invalid_event", "message": str(err)})
    new = await run_in_threadpool(_insert, events) if events else 0
    ids = [e["event"]["id"] for e in events]
    status = 202 if events else 400
    return JSONResponse(
        {"accepted": len(ids), "ids": ids, "duplicates": len(ids) - new,
         "rejected": len(errors), "errors": errors[:100]},
        status,
    )
