"""Receivers of Alertmanager notifications (webhook, e-mail) and polling, for the alert tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any


@dataclass
class Webhook:
    """Alertmanager notifications received over HTTP: (path, payload)."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    port: int = 0

    def alerts(self) -> list[tuple[str, str, dict[str, Any]]]:
        """Every alert in every notification: (path, status, alert)."""
        return [(path, a["status"], a) for path, body in self.received for a in body["alerts"]]


@dataclass
class Mailbox:
    """E-mails received by the SMTP server: (recipients, subject, body)."""

    messages: list[tuple[list[str], str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        body = "".join(
            payload.decode(errors="replace")
            for part in msg.walk()
            if part.get_content_maintype() == "text"
            and isinstance(payload := part.get_payload(decode=True), bytes)
        )
        self.messages.append((list(envelope.rcpt_tos), str(msg["Subject"]), body))
        return "250 OK"



def eventually(check: Callable[[], bool], timeout: float = 30.0, every: float = 0.25) -> bool:
    """Poll ``check`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()
