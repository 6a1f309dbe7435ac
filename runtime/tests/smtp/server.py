"""A real SMTP server for Cairn's channel tests, on aiosmtpd.

    python server.py PORT MAILDIR

Listens on 127.0.0.1:PORT and prints `READY` once it accepts connections. Every
message it accepts is written to MAILDIR as `N.eml` (the bytes received) and `N.json`
(what Python's own `email` parser reads in it: envelope, headers, MIME parts).

Recipients script the answers, by their local part:

- `reject...`     -> 550 at RCPT TO, every time (a permanent failure);
- `tempfail...`   -> 451 at RCPT TO the first time this address is seen, then accepted;
- `slow...`       -> the first RCPT TO for this address answers after 5 seconds, then
                     at once (a client with a shorter timeout gives up the first time);
- anything else   -> accepted.

With `--count-only`, accepted messages are counted, not written (for benchmarks); the
count is printed when the server stops (SIGTERM or SIGINT).

With `--tls-cert CERT.pem --tls-key KEY.pem`, the server offers STARTTLS and requires
it before any mail command (`--tls starttls`, the default) or speaks TLS from the first
byte (`--tls implicit`).

With `--auth USER:PASSWORD`, the server requires `AUTH` (PLAIN or LOGIN, allowed
without TLS) with exactly these credentials before any mail command, answers 535 to
others, and records the login in each message's `N.json` (`auth_login`).
"""

import argparse
import ssl

import asyncio
import email
import email.policy
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # `handled=False`: aiosmtpd answers 535 itself on a failure.
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None
        )

    return authenticate


class Handler:
    def __init__(self, maildir, count_only):
        self.maildir = maildir
        self.count_only = count_only
        self.seen = {}
        self.accepted = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        times = self.seen.get(address, 0)
        self.seen[address] = times + 1
        if local.startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        if local.startswith("tempfail") and times == 0:
            return "451 4.3.0 <%s>: try again later" % address
        if local.startswith("slow") and times == 0:
            await asyncio.sleep(5)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.accepted += 1
            n = self.accepted
        if self.count_only:
            return "250 2.0.0 Ok: queued as %d" % n
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append(
                {
                    "content_type": part.get_content_type(),
                    "charset": part.get_content_charset(),
                    "body": part.get_content(),
                }
            )
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "content_type": message.get_content_type(),
            "headers": {k: str(v) for k, v in message.items()},
            "parts": parts,
            "defects": [str(d) for d in message.defects],
            "auth_login": session.auth_data if session.authenticated else None,
        }
        path = os.path.join(self.maildir, "%d" % n)
        with open(path + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.rename(path + ".eml.tmp", path + ".eml")
        with open(path + ".json.tmp", "w") as f:
            json.dump(summary, f)
        os.rename(path + ".json.tmp", path + ".json")
        return "250 2.0.0 Ok: queued as %d" % n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("maildir")
    parser.add_argument("--count-only", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls", choices=["starttls", "implicit"], default="starttls")
    parser.add_argument("--auth")
    args = parser.parse_args()
    os.makedirs(args.maildir, exist_ok=True)
    handler = Handler(args.maildir, args.count_only)
    options = {}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls == "implicit":
            options["ssl_context"] = context
        else:
            options["tls_context"] = context
            options["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)
        options["authenticator"] = authenticator_for(user, password)
        options["auth_required"] = True
        options["auth_require_tls"] = False
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=args.port,
        data_size_limit=10 * 1024 * 1024,
        **options,
    )
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Also stop when the parent goes away (its end of stdin closes).
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    controller.stop()
    try:
        print("ACCEPTED %d" % handler.accepted, flush=True)
    except BrokenPipeError:
        pass  # the parent stopped reading: it does not want the count


if __name__ == "__main__":
    main()
