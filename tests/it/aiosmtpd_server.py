"""A real SMTP server for the tests (aiosmtpd): plain, STARTTLS or implicit TLS, AUTH optional
or required with a chosen set of mechanisms, some recipients refused with 550. Every accepted
message is written to MAILDIR as N.eml with its envelope in N.json. Prints READY when it
listens; stops when its stdin closes.

    python aiosmtpd_server.py --port P --maildir D [--tls starttls|implicit --cert C --key K]
        [--auth-user U --auth-pass W] [--mechanisms PLAIN,LOGIN] [--reject a@x,b@y]
"""

import argparse
import json
import logging
import warnings
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, maildir, reject):
        self.maildir = maildir
        self.reject = set(reject)
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.maildir, str(self.count))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        # Written aside and renamed: a reader never finds the envelope half written.
        with open(base + ".json.part", "w") as f:
            json.dump(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    # STARTTLS sets session.ssl; implicit TLS shows on the transport.
                    "tls": session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None,
                    "auth": bool(session.authenticated),
                },
                f,
            )
        os.replace(base + ".json.part", base + ".json")
        return "250 2.0.0 queued as %d" % self.count


def main():
    # aiosmtpd warns that AUTH without required TLS is unsafe: over implicit TLS it is safe,
    # and the plain server of the tests requires no AUTH.
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth-user")
    p.add_argument("--auth-pass")
    p.add_argument("--mechanisms", default="PLAIN,LOGIN")
    p.add_argument("--reject", default="")
    a = p.parse_args()

    context = None
    if a.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        # Every attempt is counted: a client that distrusts the certificate makes none.
        with open(os.path.join(a.maildir, "auth-attempts"), "a") as f:
            f.write(mechanism + "\n")
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.auth_user
            and auth_data.password.decode() == a.auth_pass
        )
        return AuthResult(success=ok)

    kwargs = {}
    if a.auth_user:
        wanted = set(a.mechanisms.split(","))
        kwargs.update(
            authenticator=authenticate,
            auth_required=True,
            # aiosmtpd hides AUTH before STARTTLS; over implicit TLS it cannot tell, so it
            # is told only for STARTTLS.
            auth_require_tls=a.tls == "starttls",
            auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m not in wanted],
        )
    if a.tls == "starttls":
        kwargs.update(tls_context=context, require_starttls=True)
    elif a.tls == "implicit":
        kwargs["ssl_context"] = context
    handler = Keep(a.maildir, [r for r in a.reject.split(",") if r])
    controller = Controller(
        handler, hostname="127.0.0.1", port=a.port, server_hostname="localhost", **kwargs
    )
    controller.start()
    print("READY", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
