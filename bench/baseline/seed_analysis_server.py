"""The seed-000 analysis server's way of running scripts, as a benchmark baseline.

Seed 000 (AI_EDR_Analysis_RestAPI_Server) is a FastAPI server that turns uploaded Python
source into modules and, for each event, calls every script's
`Start_Analysis(queue_instance, DATA)`; each script starts a thread that puts one dict in
the queue, and the server answers all results at once. This file reproduces that path
(module creation from source, a queue and a thread per script per event, results gathered
at the end) so that Vigil's analyze endpoint can be measured beside it on the same
scripts. It is not the seed's code (not copied: its repository is not reachable here).

Run: BASELINE_SCRIPTS=dir uvicorn seed_analysis_server:app --port N
Every *.py in BASELINE_SCRIPTS is loaded BASELINE_COPIES times (default 1).
"""

import glob
import os
import queue
import time
import types

from fastapi import FastAPI, Request

app = FastAPI()
SCRIPTS = []

for copy in range(int(os.environ.get("BASELINE_COPIES", "1"))):
    for path in sorted(glob.glob(os.path.join(os.environ["BASELINE_SCRIPTS"], "*.py"))):
        name = f"{os.path.basename(path)[:-3]}_{copy}"
        module = types.ModuleType(name)
        module.CONFIG = {}
        exec(compile(open(path).read(), path, "exec"), module.__dict__)
        SCRIPTS.append((name, module))


@app.post("/analyze")
async def analyze(request: Request):
    started = time.perf_counter()
    data = await request.body()
    pending = []
    for name, module in SCRIPTS:
        q = queue.Queue()
        module.Start_Analysis(q, data)
        pending.append((name, q))
    results, errors = {}, {}
    for name, q in pending:
        try:
            r = q.get(timeout=5)
            if r:
                results[name] = r
        except queue.Empty:
            errors[name] = {"code": "timeout"}
    return {"results": results, "errors": errors,
            "took_ms": (time.perf_counter() - started) * 1000}
