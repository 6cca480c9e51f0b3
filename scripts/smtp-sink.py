#!/usr/bin/python3
"""A local SMTP sink for Coffer's tests (started by scripts/services.sh up smtp).

Usage: smtp-sink.py HOST PORT USER PASSWORD DIR

Listens on HOST:PORT, requires AUTH (PLAIN or LOGIN) with USER and PASSWORD — other credentials
get the server's "535 5.7.8 Authentication credentials invalid" — and writes each accepted message
to DIR/<n>.eml, with its envelope in DIR/<n>.json. No TLS: tests use it on 127.0.0.1 only.
"""
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, user, password, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
os.makedirs(outdir, exist_ok=True)
lock = threading.Lock()


class Sink:
    async def handle_DATA(self, server, session, envelope):
        with lock:
            n = len([f for f in os.listdir(outdir) if f.endswith(".eml")]) + 1
            with open(os.path.join(outdir, f"{n}.eml"), "wb") as f:
                f.write(envelope.original_content or envelope.content)
            with open(os.path.join(outdir, f"{n}.json"), "w") as f:
                json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, f)
        return "250 2.0.0 OK: queued"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Sink(),
    hostname=host,
    port=port,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=False,
)
controller.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())
stop.wait()
controller.stop()
