"""A real SMTP server for the email responder's tests (aiosmtpd): STARTTLS required,
AUTH required after TLS, every accepted message written as JSON into OUT_DIR.

    python3 smtp_server.py OUT_DIR CERT KEY USER PASSWORD [FAIL_FIRST]

Prints the port it listens on (127.0.0.1), then serves until killed. With FAIL_FIRST = n,
the first n messages are answered 451 (a transient failure).
"""
import json
import os
import socket
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out, cert, key, user, password = sys.argv[1:6]
fail_first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
state = {"seen": 0}


class Handler:
    async def handle_DATA(self, server, session, envelope):
        state["seen"] += 1
        if state["seen"] <= fail_first:
            return "451 4.3.0 try again later"
        n = len(os.listdir(out))
        with open(os.path.join(out, f"{n}.json.tmp"), "w") as f:
            json.dump(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf8", "replace"),
                    "tls": session.ssl is not None,
                    "authenticated": session.authenticated,
                },
                f,
            )
        os.rename(os.path.join(out, f"{n}.json.tmp"), os.path.join(out, f"{n}.json"))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False)


s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=port,
    tls_context=ctx,
    require_starttls=True,
    authenticator=authenticator,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
print(port, flush=True)
while True:
    time.sleep(3600)
