"""Deliver a report: e-mail through SMTP and a Slack-compatible webhook, with retries and a record.

Each channel is tried up to ``retries`` times with exponential back-off. Every
outcome is written to the ClickHouse table ``report_deliveries``; a channel that
already has a ``sent`` row for the report's period is skipped unless forced, which
is what keeps a restarted scheduler from sending a report twice. The SMTP password
and the webhook URL (it holds a token) come from the settings' secrets and are
never logged; recipients are logged only as a count.
"""

from __future__ import annotations

import asyncio
import mimetypes
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import aiosmtplib
import httpx
import structlog
from clickhouse_connect.driver.client import Client

from config.settings import Settings, SmtpSettings
from reporting.report import Report
from streaming.exceptions import LeadstreamError

__all__ = [
    "Deliverer",
    "DeliveryError",
    "DeliveryResult",
    "already_sent",
    "post_webhook",
    "send_email",
    "slack_payload",
]

log = structlog.get_logger(__name__)

Channel = Literal["email", "webhook"]


class DeliveryError(LeadstreamError):
    """A report could not be delivered; the message says through which channel and why."""


@dataclass(frozen=True)
class DeliveryResult:
    """The outcome of one channel for one report."""

    channel: Channel
    status: Literal["sent", "failed", "skipped"]
    attempts: int
    error: str = ""


def email_message(cfg: SmtpSettings, report: Report, html: str, files: list[Path]) -> EmailMessage:
    """The e-mail: a plain-text summary, the HTML report as the alternative, files attached."""
    msg = EmailMessage()
    msg["Subject"] = report.title
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.recipients)
    msg.set_content("\n\n".join([report.title, *report.summary]))
    msg.add_alternative(html, subtype="html")
    for path in files:
        ctype, _ = mimetypes.guess_type(path.name)
        maintype, subtype = (ctype or "application/octet-stream").split("/", 1)
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    return msg


async def send_email(cfg: SmtpSettings, message: EmailMessage) -> None:
    """Send through the configured server (TLS, STARTTLS or plain; login if a user is set)."""
    if not cfg.host or not cfg.recipients:
        raise DeliveryError(
            "e-mail delivery needs LEADSTREAM_SMTP__HOST and LEADSTREAM_SMTP__RECIPIENTS"
        )
    password = cfg.password.get_secret_value() if cfg.password else None
    await aiosmtplib.send(
        message, hostname=cfg.host, port=cfg.port, username=cfg.username,
        password=password if cfg.username else None, use_tls=cfg.security == "tls",
        start_tls=cfg.security == "starttls", validate_certs=cfg.verify_tls,
        timeout=cfg.timeout_s,
    )  # fmt: skip


def slack_payload(report: Report, public_url: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message: the headline, the budget advice and a link."""
    recs = report.recommendations
    lines = [f"*{report.title}*", report.summary[0], f"*Budget:* {recs.summary}"]
    lines += [f"• {m.text}" for m in recs.moves[:3]]
    if public_url:
        lines.append(f"<{public_url}|Open the dashboard>")
    text = "\n".join(lines)
    return {
        "text": f"{report.title}: {report.summary[0]}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
    }


async def post_webhook(url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST the JSON payload; a 4xx other than 429 is final, anything else may be retried."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        response = await http.post(url, json=payload)
    if response.status_code >= 300:
        final = 400 <= response.status_code < 500 and response.status_code != 429
        raise _WebhookStatusError(response.status_code, final)


class _WebhookStatusError(DeliveryError):
    def __init__(self, status: int, final: bool) -> None:
        super().__init__(f"webhook answered HTTP {status}")
        self.final = final


async def _retry(
    fn: Callable[[], Awaitable[None]], retries: int, backoff_s: float, channel: str
) -> int:
    """Call ``fn`` until it succeeds, at most ``retries`` times; returns the attempts made."""
    for attempt in range(1, retries + 1):
        try:
            await fn()
            return attempt
        except Exception as exc:
            final = getattr(exc, "final", False) or attempt == retries
            log.warning("report.delivery_attempt_failed", channel=channel, attempt=attempt,
                        error=_safe(exc), final=final)  # fmt: skip
            if final:
                raise DeliveryError(f"{channel}: {_safe(exc)} (after {attempt} attempts)") from exc
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")  # retries >= 1


def _safe(exc: BaseException) -> str:
    """An error message without URLs (a webhook URL holds its token)."""
    text = str(exc) or type(exc).__name__
    return " ".join("<url>" if "://" in w else w for w in text.split())[:300]


_SENT = """
    SELECT count() FROM {db:Identifier}.report_deliveries FINAL
    WHERE report_key = {key:String} AND channel = {channel:String} AND status = 'sent'"""


def already_sent(client: Client, database: str, report_key: str, channel: str) -> bool:
    """Whether the report of ``report_key`` was already delivered through ``channel``."""
    params = {"db": database, "key": report_key, "channel": channel}
    return bool(client.query(_SENT, parameters=params).result_rows[0][0])


class Deliverer:
    """Delivers reports through every configured channel and records each outcome.

    Parameters
    ----------
    settings
        The SMTP, webhook and report sections are read.
    client
        ClickHouse client holding ``report_deliveries``.
    lock
        Serialises calls on a client shared with other threads.
    """

    def __init__(
        self, settings: Settings, client: Client, lock: threading.Lock | None = None
    ) -> None:
        self.settings = settings
        self.client = client
        self.lock = lock or threading.Lock()

    def channels(self) -> list[Channel]:
        """The channels that are configured."""
        out: list[Channel] = []
        if self.settings.smtp.host and self.settings.smtp.recipients:
            out.append("email")
        if self.settings.webhook.url is not None:
            out.append("webhook")
        return out

    async def deliver(
        self, report: Report, html: str, files: list[Path], *, force: bool = False,
        trigger: str = "command",
    ) -> list[DeliveryResult]:  # fmt: skip
        """Send ``report`` through each configured channel not yet done for its period."""
        cfg, results = self.settings.reports, []
        for channel in self.channels():
            if not force and await self.sent(report.period.key, channel):
                log.info("report.delivery_skipped", report=report.period.key, channel=channel,
                         reason="already sent")  # fmt: skip
                results.append(DeliveryResult(channel, "skipped", 0))
                continue
            send = self._sender(channel, report, html, files)
            try:
                attempts = await _retry(send, cfg.retries, cfg.backoff_s, channel)
                result = DeliveryResult(channel, "sent", attempts)
            except DeliveryError as exc:
                result = DeliveryResult(channel, "failed", cfg.retries, str(exc))
            await asyncio.to_thread(self._record, report, result, files, trigger)
            log.info("report.delivered", report=report.period.key, channel=channel,
                     status=result.status, attempts=result.attempts)  # fmt: skip
            results.append(result)
        return results

    def _sender(
        self, channel: Channel, report: Report, html: str, files: list[Path]
    ) -> Callable[[], Awaitable[None]]:
        s = self.settings
        if channel == "email":
            message = email_message(s.smtp, report, html, files)
            return lambda: send_email(s.smtp, message)
        assert s.webhook.url is not None
        url, payload = s.webhook.url.get_secret_value(), slack_payload(report, s.reports.public_url)
        return lambda: post_webhook(url, payload, s.webhook.timeout_s)

    async def sent(self, key: str, channel: str) -> bool:
        """Whether ``key`` was already delivered through ``channel`` (from the record)."""

        def query() -> bool:
            with self.lock:
                return already_sent(self.client, self.settings.clickhouse.database, key, channel)

        return await asyncio.to_thread(query)

    def _target(self, channel: Channel) -> str:
        s = self.settings
        if channel == "email":
            return f"{s.smtp.host}:{s.smtp.port} ({len(s.smtp.recipients)} recipients)"
        assert s.webhook.url is not None
        return urlsplit(s.webhook.url.get_secret_value()).hostname or "webhook"

    def _record(self, report: Report, r: DeliveryResult, files: list[Path], trigger: str) -> None:
        now = datetime.now(UTC)
        p = report.period
        row = [f"{p.key}/{r.channel}/{now.isoformat()}", p.key, p.kind, p.start, p.end, r.channel,
               self._target(r.channel), r.status, r.attempts, r.error[:1000],
               [f.name for f in files], trigger, now]  # fmt: skip
        cols = ["delivery_id", "report_key", "period_kind", "period_start", "period_end",
                "channel", "target", "status", "attempts", "error", "artefacts", "trigger",
                "recorded_at"]  # fmt: skip
        with self.lock:
            self.client.insert(
                f"{self.settings.clickhouse.database}.report_deliveries", [row], column_names=cols
            )
