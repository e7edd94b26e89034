"""Delivery against real servers: aiosmtpd on 127.0.0.1 and a local HTTP webhook receiver.

Each test checks what the server received, the retries, and the delivery record in
ClickHouse; secrets (SMTP password, webhook token) never reach logs or records.
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from structlog.testing import capture_logs

from config.settings import Settings
from reporting.delivery import Deliverer
from reporting.exports import render_html
from tests.reports._servers import PASSWORD, USER, self_signed, smtp_server, webhook_receiver
from tests.reports.conftest import Store

TOKEN = "T000/B000/XXXXsecretTOKEN"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    return self_signed(tmp_path_factory.mktemp("tls"))


def _settings(store: Store, **sections: Any) -> Settings:
    base = {"retries": 3, "backoff_s": 0.01}
    return store.settings.model_copy(update={
        "smtp": store.settings.smtp.model_copy(update=sections.get("smtp", {})),
        "webhook": store.settings.webhook.model_copy(update=sections.get("webhook", {})),
        "reports": store.settings.reports.model_copy(update={**base, **sections.get("reports", {})}),
    })  # fmt: skip


def _smtp(port: int, security: str, password: str = PASSWORD) -> dict[str, Any]:
    from pydantic import SecretStr

    return {"host": "127.0.0.1", "port": port, "security": security, "username": USER,
            "password": SecretStr(password), "verify_tls": False, "sender": "reports@example.test",
            "recipients": ("cmo@example.test", "growth@example.test")}  # fmt: skip


def _records(client: Client, store: Store, channel: str) -> list[tuple[Any, ...]]:
    rows = client.query(
        "SELECT status, attempts, target, error, artefacts FROM {db:Identifier}.report_deliveries "
        "WHERE channel = {c:String} ORDER BY recorded_at",
        parameters={"db": store.settings.clickhouse.database, "c": channel},
    ).result_rows
    return [tuple(r) for r in rows]


def _clear(client: Client, store: Store) -> None:
    client.command(f"TRUNCATE TABLE {store.settings.clickhouse.database}.report_deliveries")


async def test_email_over_starttls_with_login_html_and_attachments(
    store: Store, client: Client, tls: ssl.SSLContext
) -> None:
    _clear(client, store)
    files = [p for p in store.files if p.suffix in (".pdf", ".xlsx")]
    with smtp_server(tls) as box:
        settings = _settings(store, smtp=_smtp(box.port, "starttls"))
        with capture_logs() as logs:
            results = await Deliverer(settings, client).deliver(
                store.report, render_html(store.report), files
            )
    assert [(r.channel, r.status, r.attempts) for r in results] == [("email", "sent", 1)]
    assert box.logins == [USER] and len(box.messages) == 1
    sender, rcpts, msg = box.messages[0]
    assert sender == "reports@example.test" and rcpts == ["cmo@example.test", "growth@example.test"]
    assert msg["Subject"] == store.report.title
    html = msg.get_body(("html",))
    assert html is not None and store.report.summary[0][:60] in html.get_content()
    attached = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert attached == {p.name: p.read_bytes() for p in files}
    [(status, attempts, target, error, artefacts)] = _records(client, store, "email")
    assert (status, attempts, error) == ("sent", 1, "")
    assert target == f"127.0.0.1:{box.port} (2 recipients)" and sorted(artefacts) == sorted(
        attached
    )
    assert PASSWORD not in repr(logs) and "cmo@example.test" not in repr(logs)


# With implicit TLS the whole session is encrypted; aiosmtpd still warns about AUTH.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_email_over_implicit_tls_and_a_wrong_password_is_recorded_as_failed(
    store: Store, client: Client, tls: ssl.SSLContext
) -> None:
    _clear(client, store)
    with smtp_server(tls, implicit=True) as box:
        ok = _settings(store, smtp=_smtp(box.port, "tls"))
        sent = await Deliverer(ok, client).deliver(store.report, "<p>x</p>", [])
        bad = _settings(store, smtp=_smtp(box.port, "tls", password="wrong-password-123"))
        with capture_logs() as logs:
            failed = await Deliverer(bad, client).deliver(store.report, "<p>x</p>", [], force=True)
    assert sent[0].status == "sent" and len(box.messages) == 1
    assert (failed[0].status, failed[0].attempts) == ("failed", 3)
    assert sum(e["event"] == "report.delivery_attempt_failed" for e in logs) == 3
    records = _records(client, store, "email")
    assert [r[0] for r in records] == ["sent", "failed"] and "535" in records[1][3]
    assert "wrong-password-123" not in repr(logs) + repr(records)


async def test_webhook_retries_with_backoff_then_delivers_slack_json(
    store: Store, client: Client
) -> None:
    from pydantic import SecretStr

    _clear(client, store)
    with webhook_receiver(fail_first=2) as hook:
        url = f"http://127.0.0.1:{hook.port}/services/{TOKEN}"
        settings = _settings(store, webhook={"url": SecretStr(url)},
                             reports={"public_url": "https://dash.example.test"})  # fmt: skip
        with capture_logs() as logs:
            results = await Deliverer(settings, client).deliver(store.report, "", [])
            again = await Deliverer(settings, client).deliver(store.report, "", [])
    assert [(r.status, r.attempts) for r in results] == [("sent", 3)]
    assert [r.status for r in again] == ["skipped"] and hook.calls == 3
    [body] = hook.bodies
    assert hook.paths == [f"/services/{TOKEN}"]
    assert body["text"].startswith(store.report.title)
    section = body["blocks"][0]["text"]
    assert section["type"] == "mrkdwn" and store.report.recommendations.summary in section["text"]
    assert "<https://dash.example.test|Open the dashboard>" in section["text"]
    [(status, attempts, target, _, _)] = _records(client, store, "webhook")
    assert (status, attempts, target) == ("sent", 3, "127.0.0.1")
    assert TOKEN not in repr(logs)


async def test_webhook_client_error_is_not_retried(store: Store, client: Client) -> None:
    from pydantic import SecretStr

    _clear(client, store)
    with webhook_receiver(fail_first=10, fail_status=404) as hook:
        settings = _settings(
            store, webhook={"url": SecretStr(f"http://127.0.0.1:{hook.port}/x/{TOKEN}")}
        )
        results = await Deliverer(settings, client).deliver(store.report, "", [])
    assert (results[0].status, hook.calls) == ("failed", 1)
    assert "HTTP 404" in results[0].error and TOKEN not in results[0].error


def test_unconfigured_channels_deliver_nothing(store: Store, client: Client) -> None:
    assert Deliverer(store.settings, client).channels() == []
