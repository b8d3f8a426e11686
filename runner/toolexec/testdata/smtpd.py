"""A real SMTP server for the email tool's tests (Debian's python3-aiosmtpd).

    python3 smtpd.py --port N --out FILE --user U --password P [--mode plain|starttls|tls --cert C --key K]

Listens on 127.0.0.1:N with AUTH (PLAIN and LOGIN, one user) required
before MAIL; "starttls" offers STARTTLS, "tls" is implicit TLS from the
first byte. Each message received is appended to FILE as one JSON line
{mail_from, rcpt_tos, mechanism, login, tls, data}. Prints "ready" once it
accepts connections, and runs until stdin closes (the test process ends).
"""

import argparse
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--mode", default="plain", choices=["plain", "starttls", "tls"])
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        if ok:
            session.cronium_mechanism = mechanism
            session.cronium_login = auth_data.login.decode()
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            rec = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "mechanism": getattr(session, "cronium_mechanism", ""),
                "login": getattr(session, "cronium_login", ""),
                # Set after STARTTLS and with implicit TLS alike.
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "data": envelope.original_content.decode("utf-8", "replace"),
            }
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            return "250 Message accepted for delivery"

    ctx = None
    if args.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    kw = dict(
        hostname="127.0.0.1",
        port=args.port,
        authenticator=authenticator,
        auth_required=True,
        # Loopback only: the tests check AUTH without TLS too.
        auth_require_tls=False,
        require_starttls=False,
    )
    if args.mode == "starttls":
        kw["tls_context"] = ctx
    elif args.mode == "tls":
        kw["ssl_context"] = ctx
    c = Controller(Handler(), **kw)
    c.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        c.stop()


if __name__ == "__main__":
    main()
