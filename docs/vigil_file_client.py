#!/usr/bin/env python3
"""A small client for Vigil's file-analysis protocol (see docs/protocol.md).

Standard library only. Use it as a module::

    from vigil_file_client import VigilFileClient, STATIC

    with VigilFileClient("127.0.0.1", 9300, api_key="vgl_...") as client:
        result = client.analyze(STATIC, data=open("sample.exe", "rb").read())
        print(result["status"], result["score"], result["report"]["explanation"])

or from the command line::

    python3 docs/vigil_file_client.py --host 127.0.0.1 --port 9300 --key vgl_... \\
        --command static sample.exe other.dll

which prints one JSON line per file. ``--selftest`` checks the frame encoder and decoder
against hand-written bytes; it needs no server.

Wire format, in short (all integers little-endian):

* request: ``command u32``, then up to 8 fields ``length u32 + bytes``, then ``_END``;
* reply:   ``status u32`` (1029 YES, 1030 NO, 1031 ERROR), then for YES/NO
  ``score f32, length u32, JSON`` and for ERROR ``code u32, length u32, message``,
  then ``_END``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import struct
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "VigilFileClient",
    "VigilProtocolError",
    "tls_context",
    "encode_request",
    "decode_reply",
    "normalize_sha256",
    "AUTH",
    "STATIC",
    "DYNAMIC",
    "VIRUSTOTAL",
    "STATIC_VT",
    "DYNAMIC_VT",
    "ALL",
    "COMMANDS",
]

# --- Constants (docs/protocol.md, "Numbers") -------------------------------------------

END = b"_END"  # 5F 45 4E 44: the terminator of every frame
YES = 1029  # malicious
NO = 1030  # not malicious
ERROR = 1031  # failed: a code and a message follow
MAX_FIELDS = 8

AUTH = 0
STATIC = 1
DYNAMIC = 2
VIRUSTOTAL = 3
STATIC_VT = 4
DYNAMIC_VT = 5
ALL = 6

#: Command names accepted by the CLI and by :meth:`VigilFileClient.analyze`.
COMMANDS: Dict[str, int] = {
    "static": STATIC,
    "dynamic": DYNAMIC,
    "vt": VIRUSTOTAL,
    "static+vt": STATIC_VT,
    "dynamic+vt": DYNAMIC_VT,
    "all": ALL,
}

#: Commands that need the file's bytes (the others work from the SHA-256 alone).
NEEDS_FILE = frozenset({STATIC, STATIC_VT, ALL})

#: ERROR codes after which the server closes the connection. Code 7 closes it only when
#: it is the connection limit ("too many connections").
CLOSING_CODES = frozenset({1, 2, 4, 8})

ERROR_NAMES: Dict[int, str] = {
    0: "client",  # never sent by the server: raised by this client (I/O, bad reply)
    1: "malformed",
    2: "too_large",
    3: "unknown_command",
    4: "unauthorized",
    5: "bad_request",
    6: "unavailable",
    7: "internal",
    8: "timeout",
}

#: Largest reply payload this client accepts (the server caps fields at 64 MiB by default;
#: a report is far smaller). Protects the client from a hostile or broken peer.
MAX_REPLY_PAYLOAD = 64 << 20

_U32 = struct.Struct("<I")
_F32 = struct.Struct("<f")


def _f32(raw: bytes) -> float:
    """Reads a little-endian f32 as the shortest decimal that is the same f32.

    ``struct`` widens 0.1f to 0.10000000149011612; this gives 0.1, as the server meant.
    """
    (value,) = _F32.unpack(raw)
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if _F32.pack(short) == raw:
            return short
    return value


class VigilProtocolError(Exception):
    """An ERROR reply from the server, or (code 0) a failure on the client's side.

    Attributes:
        code: the server's error code (1-8, see docs/protocol.md), or 0 when the client
            itself failed: connection refused or closed, timeout while reading, a reply
            that does not follow the protocol.
        message: a human-readable message (the server's, for codes 1-8).
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"[{code} {ERROR_NAMES.get(code, '?')}] {message}")
        self.code = code
        self.message = message

    @property
    def closes_connection(self) -> bool:
        """Whether the server closed the connection after this error."""
        if self.code in CLOSING_CODES or self.code == 0:
            return True
        return self.code == 7 and "too many connections" in self.message.lower()


# --- Framing (mirrors crates/vigil-file/src/protocol.rs) ------------------------------

Reply = Tuple[str, float, int, bytes]
"""A decoded reply: ``(kind, score, code, payload)`` where kind is "yes", "no" or
"error"; score is meaningful for yes/no, code for error."""


def encode_request(command: int, fields: Sequence[bytes]) -> bytes:
    """Encodes a request: ``command u32``, each field as ``length u32 + bytes``, ``_END``."""
    if not 0 <= command <= 0xFFFFFFFF:
        raise ValueError(f"command {command} does not fit in a u32")
    if len(fields) > MAX_FIELDS:
        raise ValueError(f"{len(fields)} fields; at most {MAX_FIELDS} are allowed")
    out = bytearray(_U32.pack(command))
    for field in fields:
        if _U32.pack(len(field)) == END:
            raise ValueError("a field cannot be 0x444E455F bytes long (its length reads _END)")
        out += _U32.pack(len(field))
        out += field
    out += END
    return bytes(out)


def decode_reply(buf: bytes, max_payload: int = MAX_REPLY_PAYLOAD) -> Optional[Tuple[Reply, int]]:
    """Decodes one reply from the start of ``buf``.

    Returns ``None`` when more bytes are needed, else ``(reply, consumed)``. Raises
    :class:`VigilProtocolError` (code 0) when the bytes are not a reply.
    """
    if len(buf) < 4:
        return None
    (status,) = _U32.unpack_from(buf, 0)
    if status not in (YES, NO, ERROR):
        raise VigilProtocolError(0, f"unknown reply status {status}")
    if len(buf) < 12:
        return None
    (length,) = _U32.unpack_from(buf, 8)
    if length > max_payload:
        raise VigilProtocolError(0, f"reply payload of {length} bytes is over {max_payload}")
    end = 12 + length
    if len(buf) < end + 4:
        return None
    if buf[end : end + 4] != END:
        raise VigilProtocolError(0, "reply without _END")
    payload = bytes(buf[12:end])
    if status == ERROR:
        (code,) = _U32.unpack_from(buf, 4)
        reply: Reply = ("error", 0.0, code, payload)
    else:
        score = _f32(bytes(buf[4:8]))
        reply = ("yes" if status == YES else "no", score, 0, payload)
    return reply, end + 4


def normalize_sha256(sha256: Union[str, bytes, None]) -> bytes:
    """The SHA-256 field for a hash given as hex text, 32 raw bytes, or nothing.

    Hex (either case) is sent as its 64 ASCII characters, raw digests as their 32 bytes,
    ``None`` or ``""`` as an empty field (the server then hashes FILE).
    """
    if sha256 is None or sha256 == "" or sha256 == b"":
        return b""
    if isinstance(sha256, str):
        text = sha256.strip()
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise ValueError("a SHA-256 in text must be 64 hex characters")
        return text.encode("ascii")
    raw = bytes(sha256)
    if len(raw) == 32:
        return raw
    if len(raw) == 64:
        return normalize_sha256(raw.decode("ascii", errors="replace"))
    raise ValueError("a SHA-256 must be 64 hex characters or 32 raw bytes")


def reply_to_result(reply: Reply) -> Dict[str, object]:
    """Turns a YES/NO reply into the result dict; raises for an ERROR reply."""
    kind, score, code, payload = reply
    if kind == "error":
        raise VigilProtocolError(code, payload.decode("utf-8", errors="replace"))
    try:
        report = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise VigilProtocolError(0, f"the report is not UTF-8 JSON: {e}") from None
    return {"status": kind, "malicious": kind == "yes", "score": score, "report": report}


# --- The client -----------------------------------------------------------------------


def tls_context(
    ca_cert: Optional[str] = None,
    client_cert: Optional[str] = None,
    client_key: Optional[str] = None,
) -> ssl.SSLContext:
    """A TLS context for a Vigil server: trusting ``ca_cert`` (a private CA from
    ``vigil tls init``) besides the system's, with a client certificate when the server
    requires mutual TLS."""
    ctx = ssl.create_default_context(cafile=ca_cert)
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx



class VigilFileClient:
    """One connection to a Vigil file-analysis listener.

    The connection opens on first use. When ``api_key`` is given, the first request on
    each connection is an AUTH frame with it (sent by :meth:`auth`, called automatically).
    After an error that closes the connection (codes 1, 2, 4, 8, or 7 "too many
    connections"), the next call opens a new one.

    Not thread-safe: use one client per thread (the server serves connections
    concurrently).

    ``tls`` is an :class:`ssl.SSLContext` for a server with ``[tls]`` set (see
    :func:`tls_context`); ``None`` speaks plain TCP.
    """

    def __init__(
        self,
        host: str,
        port: int,
        api_key: Optional[str] = None,
        timeout: float = 30,
        tls: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.timeout = timeout
        self.tls = tls
        self.role: Optional[str] = None
        self._sock: Optional[socket.socket] = None
        self._buf = bytearray()
        self._authenticated = False

    # Connection management.

    def __enter__(self) -> "VigilFileClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection (a later call reconnects)."""
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
        self._buf.clear()
        self._authenticated = False
        self.role = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                if self.tls is not None:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                self._sock = sock
            except OSError as e:
                raise VigilProtocolError(0, f"cannot connect to {self.host}:{self.port}: {e}") from None
            self._sock.settimeout(self.timeout)
        return self._sock

    # Low level: one frame out, one frame in. Several send_request calls followed by as
    # many read_reply calls pipeline requests; replies come back in order.

    def send_request(self, command: int, fields: Sequence[bytes]) -> None:
        """Sends one request frame (connecting first if needed)."""
        frame = encode_request(command, fields)
        sock = self._connect()
        try:
            sock.sendall(frame)
        except OSError as e:
            self.close()
            raise VigilProtocolError(0, f"send failed: {e}") from None

    def read_reply(self) -> Reply:
        """Reads exactly one reply, looping on ``recv`` until the frame is complete.

        Bytes past the frame (a pipelined reply) are kept for the next call. Raises
        :class:`VigilProtocolError` (code 0) on timeout, on a closed connection, or on a
        reply that does not follow the protocol.
        """
        sock = self._connect()
        while True:
            decoded = decode_reply(self._buf)
            if decoded is not None:
                reply, used = decoded
                del self._buf[:used]
                return reply
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                self.close()
                raise VigilProtocolError(0, f"no complete reply within {self.timeout} s") from None
            except OSError as e:
                self.close()
                raise VigilProtocolError(0, f"receive failed: {e}") from None
            if not chunk:
                partial = len(self._buf)
                self.close()
                raise VigilProtocolError(0, f"connection closed by the server ({partial} bytes of a reply read)")
            self._buf += chunk

    def request(self, command: int, fields: Sequence[bytes]) -> Dict[str, object]:
        """Sends one request and returns its result dict (raises on ERROR)."""
        self.send_request(command, fields)
        try:
            return reply_to_result(self.read_reply())
        except VigilProtocolError as e:
            if e.closes_connection:
                self.close()
            raise

    # High level.

    def auth(self) -> Dict[str, object]:
        """Sends AUTH with ``api_key`` (a ``vgl_...`` key or a JWT).

        Returns the result dict, whose report reads ``{"authenticated": true, "role": ...}``.
        Raises :class:`VigilProtocolError` with code 4 when the key is refused (the server
        then closes the connection).
        """
        if not self.api_key:
            raise ValueError("no api_key to authenticate with")
        result = self.request(AUTH, [self.api_key.encode("utf-8")])
        report = result["report"]
        if not isinstance(report, dict) or report.get("authenticated") is not True:
            self.close()
            raise VigilProtocolError(0, f"unexpected AUTH reply: {report!r}")
        self._authenticated = True
        role = report.get("role")
        self.role = role if isinstance(role, str) else None
        return result

    def analyze(
        self,
        command: Union[int, str],
        data: bytes = b"",
        sha256: Union[str, bytes, None] = None,
        vt_key: str = "",
    ) -> Dict[str, object]:
        """Runs analysis ``command`` (1-6, or a name from :data:`COMMANDS`).

        Args:
            command: which analyses to run.
            data: the file's bytes (may be empty for dynamic, vt and dynamic+vt).
            sha256: the file's SHA-256 as 64 hex characters or 32 raw bytes; ``None`` lets
                the server compute it from ``data``.
            vt_key: the caller's VirusTotal key ("" uses the server's, if it has one).

        Returns:
            ``{"status": "yes"|"no", "malicious": bool, "score": float, "report": dict}``.

        Raises:
            VigilProtocolError: the server answered ERROR (or the client failed: code 0).
            ValueError: bad arguments (nothing was sent).
        """
        cmd = COMMANDS[command] if isinstance(command, str) else int(command)
        if not 1 <= cmd <= 6:
            raise ValueError(f"analysis commands are 1-6, not {cmd}")
        fields = [bytes(data), normalize_sha256(sha256), vt_key.encode("utf-8")]
        if self.api_key and not self._authenticated:
            self.auth()
        return self.request(cmd, fields)


# --- Command line ---------------------------------------------------------------------


def _analyze_path(client: VigilFileClient, command: int, path: str, vt_key: str) -> Dict[str, object]:
    """One JSON-ready line for ``path``: the result, or the error."""
    line: Dict[str, object] = {"file": path}
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        line["error"] = {"code": 0, "name": "client", "message": str(e)}
        return line
    digest = hashlib.sha256(data).hexdigest()
    line["sha256"] = digest
    try:
        if command in NEEDS_FILE:
            result = client.analyze(command, data=data, sha256=digest, vt_key=vt_key)
        else:
            # Dynamic and VirusTotal work from the hash: do not upload the bytes.
            result = client.analyze(command, sha256=digest, vt_key=vt_key)
        line.update(result)
    except VigilProtocolError as e:
        line["error"] = {"code": e.code, "name": ERROR_NAMES.get(e.code, "?"), "message": e.message}
    return line


def main(argv: Optional[List[str]] = None) -> int:
    """The CLI: one JSON line per file on stdout; exit status 1 if any file failed."""
    parser = argparse.ArgumentParser(
        description="Ask a Vigil server to analyse files over the binary protocol (docs/protocol.md).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9300, help="server port (default 9300)")
    parser.add_argument("--key", help="Vigil API key (vgl_...) or JWT; omit only if the server has require_auth = false")
    parser.add_argument("--command", choices=list(COMMANDS), default="static", help="analyses to run (default static)")
    parser.add_argument("--vt-key", default="", help="your VirusTotal API key (default: the server's)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for each reply (default 30)")
    parser.add_argument("--tls", action="store_true", help="the server has [tls] set (implied by --ca-cert)")
    parser.add_argument("--ca-cert", help="PEM CA to trust for the server (a private CA from vigil tls init)")
    parser.add_argument("--client-cert", help="PEM client certificate, when the server requires mutual TLS")
    parser.add_argument("--client-key", help="PEM key of --client-cert")
    parser.add_argument("--selftest", action="store_true", help="check the frame encoder/decoder and exit")
    parser.add_argument("files", nargs="*", metavar="FILE")
    args = parser.parse_args(argv)

    if args.selftest:
        _selftest()
        print("selftest: ok")
        return 0
    if not args.files:
        parser.error("at least one FILE is required")

    failed = False
    tls = None
    if args.tls or args.ca_cert or args.client_cert:
        tls = tls_context(args.ca_cert, args.client_cert, args.client_key)
    with VigilFileClient(args.host, args.port, api_key=args.key, timeout=args.timeout, tls=tls) as client:
        for path in args.files:
            line = _analyze_path(client, COMMANDS[args.command], path, args.vt_key)
            failed |= "error" in line
            print(json.dumps(line, separators=(",", ":")), flush=True)
            err = line.get("error")
            if isinstance(err, dict) and err.get("code") == 4:
                break  # the key is refused: every further file would fail the same way
    return 1 if failed else 0


# --- Self-test ------------------------------------------------------------------------


def _selftest() -> None:
    """Checks the encoder and decoder against hand-written bytes (no server needed)."""
    import threading

    if not __debug__:
        raise SystemExit("the self-test uses assert: run it without -O")

    # 1. The static request of docs/protocol.md: the 4-byte file MZ\x90\x00, empty
    #    SHA-256, empty VirusTotal key.
    static_request = bytes.fromhex(
        "01000000"  # command 1 (static)
        "04000000" "4d5a9000"  # FILE: length 4, bytes
        "00000000"  # SHA256: length 0
        "00000000"  # VT_KEY: length 0
        "5f454e44"  # _END
    )
    assert encode_request(STATIC, [b"MZ\x90\x00", b"", b""]) == static_request
    assert len(static_request) == 24

    # 2. AUTH and a field-less frame.
    assert encode_request(AUTH, [b"vgl_abc"]) == (
        b"\x00\x00\x00\x00" b"\x07\x00\x00\x00" b"vgl_abc" b"_END"
    )
    assert encode_request(7, []) == b"\x07\x00\x00\x00_END"

    # 3. Limits enforced before sending.
    for bad in (lambda: encode_request(1, [b""] * 9), lambda: encode_request(-1, [])):
        try:
            bad()
        except ValueError:
            pass
        else:
            raise AssertionError("an invalid request was encoded")

    # 4. A NO reply: score 0.25 (f32 00 00 80 3E), report {"a":1}.
    no_reply = (
        b"\x06\x04\x00\x00"  # 1030 NO
        b"\x00\x00\x80\x3e"  # 0.25
        b"\x07\x00\x00\x00"  # 7 bytes
        b'{"a":1}'
        b"_END"
    )
    decoded = decode_reply(no_reply)
    assert decoded == (("no", 0.25, 0, b'{"a":1}'), len(no_reply)), decoded
    assert reply_to_result(decoded[0]) == {"status": "no", "malicious": False, "score": 0.25, "report": {"a": 1}}

    # 5. A YES reply (AUTH success), score 0.0.
    auth_json = b'{"authenticated":true,"role":"agent"}'
    yes_reply = b"\x05\x04\x00\x00" + b"\x00" * 4 + bytes([len(auth_json), 0, 0, 0]) + auth_json + b"_END"
    result = reply_to_result(decode_reply(yes_reply)[0])  # type: ignore[index]
    assert result["status"] == "yes" and result["malicious"] is True and result["score"] == 0.0
    assert result["report"] == {"authenticated": True, "role": "agent"}

    # 6. The ERROR reply of docs/protocol.md: code 3, "unknown command 9".
    error_reply = bytes.fromhex(
        "07040000"  # 1031 ERROR
        "03000000"  # code 3
        "11000000"  # 17 bytes
        "756e6b6e6f776e20636f6d6d616e642039"  # "unknown command 9"
        "5f454e44"  # _END
    )
    decoded = decode_reply(error_reply)
    assert decoded == (("error", 0.0, 3, b"unknown command 9"), 33), decoded
    try:
        reply_to_result(decoded[0])
    except VigilProtocolError as e:
        assert (e.code, e.message, e.closes_connection) == (3, "unknown command 9", False)
    else:
        raise AssertionError("ERROR did not raise")
    assert VigilProtocolError(4, "x").closes_connection
    assert VigilProtocolError(7, "too many connections").closes_connection
    assert not VigilProtocolError(7, "internal error").closes_connection

    # 7. Every strict prefix is "need more"; two replies back to back decode one by one.
    for frame in (no_reply, yes_reply, error_reply):
        for n in range(len(frame)):
            assert decode_reply(frame[:n]) is None, (frame, n)
    both = error_reply + no_reply
    first, used = decode_reply(both)  # type: ignore[misc]
    assert first[0] == "error" and used == len(error_reply)
    assert decode_reply(both[used:])[0][0] == "no"  # type: ignore[index]

    # 8. Hostile replies are refused, not waited for.
    for hostile in (
        no_reply[:-4] + b"XXXX",  # wrong terminator
        b"\x05\x05\x00\x00" + b"\x00" * 12,  # unknown status 1285
        b"\x06\x04\x00\x00" + b"\x00" * 4 + b"\xff\xff\xff\xff",  # 4 GiB payload
        b"\x06\x04\x00\x00" + b"\x00" * 4 + b"\x03\x00\x00\x00" + b"abc" + b"_END",  # not JSON
    ):
        try:
            r = decode_reply(hostile)
            if r is not None:
                reply_to_result(r[0])
        except VigilProtocolError as e:
            assert e.code == 0
        else:
            raise AssertionError(f"accepted {hostile!r}")

    # 9. Scores read back as the decimal the server meant.
    assert _f32(_F32.pack(0.1)) == 0.1 and _f32(_F32.pack(0.91)) == 0.91
    assert _f32(b"\x00\x00\x80\x3f") == 1.0 and _f32(b"\x00\x00\x00\x00") == 0.0

    # 10. SHA-256 field: hex of either case as ASCII, 32 raw bytes as is, nothing as empty.
    digest = hashlib.sha256(b"MZ\x90\x00").digest()
    assert normalize_sha256(digest.hex().upper()) == digest.hex().upper().encode()
    assert normalize_sha256(digest) == digest
    assert normalize_sha256(None) == b"" and normalize_sha256("") == b""
    for bad_hash in ("abc", "g" * 64, b"\x00" * 31):
        try:
            normalize_sha256(bad_hash)
        except ValueError:
            pass
        else:
            raise AssertionError(f"accepted hash {bad_hash!r}")

    # 11. The client's read loop over a real socket pair: a fake server that checks each
    #     request, then answers it one byte at a time.
    left, right = socket.socketpair()
    exchanges = [
        (encode_request(AUTH, [b"vgl_test"]), yes_reply),
        (static_request, no_reply),
    ]

    def fake_server() -> None:
        for request, reply in exchanges:
            got = b""
            while len(got) < len(request):
                chunk = right.recv(len(request) - len(got))
                if not chunk:
                    return
                got += chunk
            assert got == request, got
            for byte in reply:
                right.sendall(bytes([byte]))
        right.close()

    thread = threading.Thread(target=fake_server, daemon=True)
    thread.start()
    client = VigilFileClient("unused", 0, api_key="vgl_test", timeout=5)
    client._sock = left  # the pair stands in for a TCP connection
    left.settimeout(5)
    result = client.analyze("static", data=b"MZ\x90\x00")
    thread.join(5)
    assert client.role == "agent" and result == {"status": "no", "malicious": False, "score": 0.25, "report": {"a": 1}}
    try:
        client.read_reply()  # the server closed: a clear error, not a hang
    except VigilProtocolError as e:
        assert e.code == 0 and "closed" in e.message
    else:
        raise AssertionError("read past the end of the connection")
    client.close()


if __name__ == "__main__":
    sys.exit(main())
