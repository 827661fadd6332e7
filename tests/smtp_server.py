"""A real SMTP server on loopback for tests/email.rs, on aiosmtpd.

Usage: python3 tests/smtp_server.py PORT DIR [starttls|implicit CERT KEY]

Without TLS by default; with `starttls`, offers STARTTLS and requires it before MAIL; with
`implicit`, speaks TLS from the first byte; both with the PEM certificate chain CERT and key
KEY. Records whether the message came over TLS ("tls"). Accepts AUTH PLAIN and LOGIN (any
password; the login is recorded), and writes
each message to DIR/N.eml, its envelope and decoded content to DIR/N.json ({"from", "to",
"login", "subject", "content_type", and "parts": each leaf part's decoded text by its content
type), N counting from 1. Each message's JSON is written last, after its .eml, via a rename:
its presence means the message is complete. Runs until killed.
"""

import email
import email.policy
import json
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        login = getattr(session.auth_data, "login", None)
        if isinstance(login, bytes):
            login = login.decode()
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = {
            part.get_content_type(): part.get_content()
            for part in message.walk()
            if not part.is_multipart()
        }
        meta = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "login": login,
            "subject": message["subject"],
            "content_type": message.get_content_type(),
            "parts": parts,
            "tls": server.transport.get_extra_info("ssl_object") is not None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    # Any password: the test checks the user the sink logged in as.
    return AuthResult(success=True, auth_data=auth_data)


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    tls = {}
    if len(sys.argv) == 6:
        mode, cert, key = sys.argv[3:6]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if mode == "starttls":
            tls = {"tls_context": context, "require_starttls": True}
        else:
            tls = {"ssl_context": context}
    controller = Controller(
        Recorder(directory),
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        **tls,
    )
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
