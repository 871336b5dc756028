# Seed-000 contract: Start_Analysis(queue_instance, DATA) puts one dict in the queue.
# DATA is the event as JSON bytes. CONFIG holds the script's config items.
import base64
import json
import queue
import re
import threading

ENCODED = re.compile(r"-(?:e|en|enc|enco|encod|encode|encoded|encodedcommand)\s+([A-Za-z0-9+/=]{16,})", re.I)


def analyze(queue_instance: queue.Queue, DATA: bytes):
    event = json.loads(DATA)
    cmd = ((event.get("process") or {}).get("command_line")) or ""
    m = ENCODED.search(cmd)
    if not m:
        queue_instance.put({})
        return
    try:
        decoded = base64.b64decode(m.group(1)).decode("utf-16-le", errors="replace")
    except ValueError:
        decoded = ""
    score = CONFIG.get("score", 70)
    queue_instance.put({
        "score": score,
        "severity": "high",
        "summary": "PowerShell ran an encoded command",
        "technique": ["T1059.001", "T1027"],
        "decoded": decoded[:512],
    })


def Start_Analysis(queue_instance: queue.Queue, DATA: bytes):
    threading.Thread(target=analyze, args=(queue_instance, DATA)).start()
    return queue_instance
