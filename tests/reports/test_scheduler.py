"""The scheduler: cron in a time zone, catch-up after downtime, and no double send after a restart.

Reports go to a real aiosmtpd server; the delivery record lives in chDB.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from cli.scheduler import build_scheduler, catch_up, missed, triggers
from config.settings import Settings
from tests.reports._servers import PASSWORD, USER, smtp_server
from tests.reports.conftest import PERIOD, Store

# Monday 23 Feb 2026, 08:30 in Berlin: the weekly report for 16–22 Feb was due at 07:00.
MONDAY = datetime(2026, 2, 23, 7, 30, tzinfo=UTC)


def _settings(store: Store, port: int, tmp: Any) -> Settings:
    return store.settings.model_copy(update={
        "smtp": store.settings.smtp.model_copy(update={
            "host": "127.0.0.1", "port": port, "security": "none", "username": USER,
            "password": SecretStr(PASSWORD), "recipients": ("cmo@example.test",)}),
        "reports": store.settings.reports.model_copy(update={
            "timezone": "Europe/Berlin", "formats": ("html", "xlsx"), "out_dir": tmp,
            "retries": 2, "backoff_s": 0.01}),
    })  # fmt: skip


def _sent(client: Client, store: Store) -> list[tuple[str, str]]:
    rows = client.query(
        "SELECT report_key, trigger FROM {db:Identifier}.report_deliveries WHERE status = 'sent'",
        parameters={"db": store.settings.clickhouse.database},
    ).result_rows
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_cron_follows_the_time_zone_through_daylight_saving() -> None:
    t = triggers(Settings(reports={"timezone": "Europe/Berlin"}))["weekly"]
    winter = t.get_next_fire_time(None, datetime(2026, 2, 18, tzinfo=UTC))
    summer = t.get_next_fire_time(None, datetime(2026, 4, 1, tzinfo=UTC))
    assert winter.astimezone(UTC).hour == 6 and summer.astimezone(UTC).hour == 5
    assert missed(t, MONDAY, 7200) == datetime(2026, 2, 23, 6, 0, tzinfo=UTC)
    assert missed(t, MONDAY, 3600) is None  # 90 minutes late is beyond the grace time


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_restart_after_the_send_does_not_send_again(
    store: Store, client: Client, tmp_path: Any
) -> None:
    client.command(f"TRUNCATE TABLE {store.settings.clickhouse.database}.report_deliveries")
    with smtp_server() as box:
        settings = _settings(store, box.port, tmp_path)
        # The scheduler was down at 07:00 Berlin time; on start it catches up.
        assert await catch_up(settings, client, now=MONDAY) == ["weekly"]
        assert len(box.messages) == 1
        # Restarted again within the grace time: the record says it was sent.
        assert await catch_up(settings, client, now=MONDAY.replace(minute=45)) == ["weekly"]
        # And the live job firing for the same period (e.g. coalesced misfire) skips too.
        scheduler = build_scheduler(settings, client, clock=lambda: MONDAY.replace(minute=50))
        ran: list[Any] = []
        scheduler.add_listener(lambda e: ran.append(e), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        scheduler.start()
        try:
            scheduler.modify_job("report-weekly", next_run_time=datetime.now(UTC))
            for _ in range(600):  # up to 30 s on a loaded machine; usually well under 1 s
                await asyncio.sleep(0.05)
                if ran:
                    break
        finally:
            scheduler.shutdown(wait=False)
    [event] = ran
    assert event.job_id == "report-weekly" and event.exception is None
    assert event.retval.period == PERIOD and event.retval.report is None  # not even rebuilt
    assert [(d.channel, d.status) for d in event.retval.deliveries] == [("email", "skipped")]
    assert len(box.messages) == 1
    assert box.messages[0][2]["Subject"] == f"leadstream weekly report: {PERIOD.label}"
    assert _sent(client, store) == [(PERIOD.key, "catch-up")]
    files = sorted(p.name for p in (tmp_path / PERIOD.key).iterdir())
    assert files == [f"leadstream-{PERIOD.key}.html", f"leadstream-{PERIOD.key}.xlsx"]


async def test_jobs_are_coalesced_with_a_grace_time(
    store: Store, client: Client, tmp_path: Any
) -> None:
    scheduler = build_scheduler(_settings(store, 25, tmp_path), client)
    scheduler.start(paused=True)  # job defaults apply when the scheduler takes the jobs
    try:
        jobs = {j.id: j for j in scheduler.get_jobs()}
        assert set(jobs) == {"report-weekly", "report-monthly"}
        for job in jobs.values():
            assert job.coalesce and job.max_instances == 1
            assert job.misfire_grace_time == store.settings.reports.misfire_grace_s
            assert str(job.trigger.timezone) == "Europe/Berlin"
            assert job.next_run_time.utcoffset() is not None
    finally:
        scheduler.shutdown(wait=False)
