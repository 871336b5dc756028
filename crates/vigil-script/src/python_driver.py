# Vigil's Python worker: runs one user script in the seed's contract,
# `Start_Analysis(queue_instance, DATA)`, for events sent one per line on stdin.
#
# Started by the server as `python3 -I -S -B -c <this file>` inside an OS sandbox
# (crates/vigil-script/src/sandbox.rs): PID 1 of its own PID, mount, network and IPC
# namespaces, a root that holds only the interpreter and its libraries (read-only), a
# separate uid, resource limits, Landlock where the kernel has it, and a seccomp filter
# (no sockets, no new processes, no exec, no signals but to itself). That is the
# boundary. The audit hook below (PEP 578) only turns the common mistakes into a clear
# "vigil sandbox: ..." error for the script's author; a script that switches it off
# still meets the OS limits.
#
# Protocol (UTF-8 JSON, one object a line):
#   server -> worker, first line: {"name": str, "source": str, "config": {...}}
#                                 or {"discover": true} (see below)
#   worker -> server: {"ready": true} or {"error": {...}}
#   server -> worker, then: one event as compact JSON (passed as DATA: bytes)
#   worker -> server: {"ok": {...}} | {"none": true} | {"error": {...}}
# The user's print() goes to stderr, which the server logs with the script's name.

import sys
import os

# Modules a script may import, loaded before the hook closes file access.
import base64, binascii, collections, datetime, fnmatch, functools, hashlib  # noqa
import ipaddress, itertools, json, math, queue, re, statistics, string  # noqa
import struct, textwrap, threading, time, traceback, types, unicodedata  # noqa
import urllib.parse  # noqa
import zlib  # noqa

_proto = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
os.dup2(2, 1)
sys.stdout = sys.stderr
_stdin = sys.stdin.buffer


def _send(obj):
    _proto.write(json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_default))
    _proto.write("\n")
    _proto.flush()


def _default(o):
    if isinstance(o, (bytes, bytearray, memoryview)):
        b = bytes(o)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(b).decode("ascii")}
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if isinstance(o, (datetime.datetime, datetime.date)):
        return o.isoformat()
    raise TypeError(f"a {type(o).__name__} cannot be part of a result")


_init = json.loads(_stdin.readline())

if _init.get("discover"):
    # Which files the interpreter needs, for the server to build the sandbox's root (run
    # once outside the sandbox, with no user code), and a check that it starts inside.
    _maps = set()
    try:
        with open("/proc/self/maps") as _f:
            for _l in _f:
                _parts = _l.rstrip("\n").split(None, 5)
                if len(_parts) == 6 and _parts[5].startswith("/") and " (deleted)" not in _parts[5]:
                    _maps.add(_parts[5])
    except OSError:
        pass
    _send({"discover": {"executable": sys.executable, "path": sys.path,
                        "maps": sorted(_maps)}})
    sys.exit(0)

_name = _init["name"]
_filename = f"<script {_name}>"


def _line_of(exc):
    """The last line of the user's script in the traceback, if any."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _filename:
            line = frame.lineno
    return line


def _error(code, exc=None, message=None):
    err = {"code": code, "message": message or f"{type(exc).__name__}: {exc}"}
    if exc is not None:
        line = _line_of(exc)
        if line is not None:
            err["line"] = line
    return {"error": err}


# The hook: a friendly refusal of what the OS sandbox refuses anyway.
_stdlib = tuple(
    os.path.realpath(p) + os.sep
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
)
_blocked_prefixes = (
    "socket.", "subprocess.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
    "os.kill", "os.killpg", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
    "os.chmod", "os.chown", "os.truncate", "os.symlink", "os.link", "os.putenv",
    "os.unsetenv", "os.listdir", "os.scandir", "os.chdir", "os.startfile",
    "os.system", "os.setuid", "ctypes.", "_ctypes.", "mmap.", "shutil.", "pty.",
    "sys.addaudithook", "sys.remote_exec", "signal.", "resource.", "fcntl.",
    "webbrowser.", "ftplib.", "smtplib.", "http.", "urllib.Request",
)
_write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_blocked_imports = {"ctypes", "_ctypes", "socket", "_socket", "subprocess", "_posixsubprocess",
                    "mmap", "pty", "resource", "fcntl", "multiprocessing", "ssl", "_ssl",
                    "select", "selectors", "asyncio", "signal", "_signal"}


def _hook(event, args):
    if event == "open":
        path, mode = args[0], args[1] or "r"
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = any(c in str(mode) for c in "wax+") or bool(flags & _write_flags)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str) and not writes:
            real = os.path.realpath(path)
            if real.startswith(_stdlib):
                return
        raise PermissionError(f"vigil sandbox: opening {path!r} is not allowed")
    if event == "import" and args[0].split(".")[0] in _blocked_imports:
        raise ImportError(f"vigil sandbox: module {args[0]!r} is not allowed")
    if event.startswith(_blocked_prefixes):
        raise PermissionError(f"vigil sandbox: {event} is not allowed")


_current = None


class _ThreadFailure:
    def __init__(self, exc):
        self.exc = exc


def _excepthook(args):
    # A thread the script started raised: answer with that error rather than wait.
    q = _current
    if q is not None and args.exc_value is not None:
        q.put(_ThreadFailure(args.exc_value))


threading.excepthook = _excepthook
_Silent = object()

try:
    _code = compile(_init["source"], _filename, "exec")
except SyntaxError as e:
    err = {"code": "compile", "message": f"{e.msg}"}
    if e.lineno:
        err["line"] = e.lineno
    if e.offset:
        err["column"] = e.offset
    _send({"error": err})
    sys.exit(0)

_module = types.ModuleType(_name)
_module.__file__ = _filename
_module.CONFIG = _init.get("config") or {}
del _init
sys.addaudithook(_hook)
try:
    exec(_code, _module.__dict__)
except BaseException as e:  # noqa: BLE001 - report whatever the module level raised
    _send(_error("runtime", e))
    sys.exit(0)
_start = getattr(_module, "Start_Analysis", None)
if not callable(_start):
    _send({"error": {"code": "no_analyze",
                     "message": "the script must define `Start_Analysis(queue_instance, DATA)`"}})
    sys.exit(0)
_send({"ready": True})

while True:
    _line = _stdin.readline()
    if not _line:
        break
    _data = _line.rstrip(b"\n")
    _q = queue.Queue()
    _current = _q
    try:
        _start(_q, _data)
        while True:
            try:
                _item = _q.get(timeout=0.05)
                break
            except queue.Empty:
                # Nothing running that could still answer: say so rather than hang.
                if threading.active_count() == 1 and _q.empty():
                    _item = _Silent
                    break
    except BaseException as e:  # noqa: BLE001
        _send(_error("runtime", e))
        continue
    finally:
        _current = None
    if _item is _Silent:
        _send({"error": {"code": "bad_return",
                         "message": "Start_Analysis returned and no thread put a dict in the queue"}})
    elif isinstance(_item, _ThreadFailure):
        _send(_error("runtime", _item.exc))
    elif _item is None or _item == {}:
        # Nothing to say, like `()` from a Rhai script.
        _send({"none": True})
    elif not isinstance(_item, dict):
        _send({"error": {"code": "bad_return",
                         "message": f"put a dict in the queue, not a {type(_item).__name__}"}})
    else:
        try:
            _send({"ok": _item})
        except (TypeError, ValueError) as e:
            _send(_error("bad_return", e))
