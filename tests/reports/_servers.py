"""Real local servers for the delivery tests: aiosmtpd (SMTP) and a small HTTP webhook receiver."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "reports", "s3cret-smtp-pass-9f2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(folder: Path) -> ssl.SSLContext:
    """A server TLS context with a throw-away certificate for 127.0.0.1 (openssl CLI)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@dataclass
class Mailbox:
    """What the SMTP server received."""

    port: int
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


@contextmanager
def smtp_server(tls: ssl.SSLContext | None = None, implicit: bool = False) -> Iterator[Mailbox]:
    """aiosmtpd on a free port requiring AUTH (user/password above); STARTTLS or TLS with ``tls``."""
    box = Mailbox(free_port())

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    kwargs: dict[str, Any] = {"authenticator": authenticate, "auth_required": True}
    if tls is not None and implicit:
        kwargs |= {"ssl_context": tls, "auth_require_tls": False}
    elif tls is not None:
        kwargs |= {"tls_context": tls, "require_starttls": True}
    else:
        kwargs |= {"auth_require_tls": False}
    controller = Controller(box, hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Hook:
    """A webhook receiver: answers ``fail_first`` requests with ``fail_status``, then 200."""

    port: int
    fail_first: int = 0
    fail_status: int = 503
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    calls: int = 0


@contextmanager
def webhook_receiver(fail_first: int = 0, fail_status: int = 503) -> Iterator[Hook]:
    hook = Hook(free_port(), fail_first, fail_status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.calls += 1
            status = hook.fail_status if hook.calls <= hook.fail_first else 200
            if status == 200:
                hook.bodies.append(json.loads(body))
                hook.paths.append(self.path)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
