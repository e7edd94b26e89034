"""`leadstream scheduler`: weekly and monthly reports on cron schedules, in a time zone.

APScheduler 3 runs the jobs (``coalesce``: runs missed together fire once;
``misfire_grace_time``: a run up to ``reports.misfire_grace_s`` late still fires).
A job store in memory forgets what happened before a restart, so two things make
restarts safe: on start, :func:`missed` finds a scheduled time that passed while the
scheduler was down (within the grace time) and runs it now, and every delivery first
checks the ``report_deliveries`` record, so a report already sent is not sent again.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import structlog
import typer
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from clickhouse_connect.driver.client import Client
from rich.console import Console

from cli._context import settings_from
from cli._errors import open_store, refuse_placeholder_secrets
from cli.report import Published, publish
from config.settings import Settings
from reporting._period import Period, PeriodKind

log = structlog.get_logger(__name__)
console = Console(stderr=True)

KINDS: tuple[PeriodKind, ...] = ("weekly", "monthly")


def triggers(settings: Settings) -> dict[PeriodKind, CronTrigger]:
    """The cron trigger of each report, in the report time zone.

    >>> from config.settings import Settings
    >>> t = triggers(Settings(reports={"timezone": "Europe/Berlin"}))["weekly"]
    >>> t.get_next_fire_time(None, datetime(2026, 7, 1, tzinfo=UTC)).astimezone(UTC).isoformat()
    '2026-07-06T05:00:00+00:00'
    """
    cfg, tz = settings.reports, ZoneInfo(settings.reports.timezone)
    return {
        "weekly": CronTrigger.from_crontab(cfg.weekly_cron, timezone=tz),
        "monthly": CronTrigger.from_crontab(cfg.monthly_cron, timezone=tz),
    }


def missed(trigger: CronTrigger, now: datetime, grace_s: int) -> datetime | None:
    """The latest fire time in ``(now - grace, now]``, if there is one.

    >>> t = CronTrigger.from_crontab("0 7 * * mon", timezone=UTC)
    >>> missed(t, datetime(2026, 2, 9, 9, 0, tzinfo=UTC), 6 * 3600)
    datetime.datetime(2026, 2, 9, 7, 0, tzinfo=datetime.timezone.utc)
    >>> missed(t, datetime(2026, 2, 9, 14, 0, tzinfo=UTC), 6 * 3600) is None
    True
    """
    start = now - timedelta(seconds=grace_s)
    fire = trigger.get_next_fire_time(None, start)
    found = None
    while fire is not None and fire <= now:
        found = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return found.astimezone(UTC) if found else None


async def run_job(
    settings: Settings, client: Client, kind: PeriodKind, at: datetime | None = None,
    trigger: str = "schedule", clock: Callable[[], datetime] | None = None,
) -> Published | None:  # fmt: skip
    """One scheduled report: the last complete period as of ``at``, sent unless already sent.

    Returns what was done (None if it failed: logged, and the scheduler keeps going).
    """
    at = at or (clock or _utcnow)()
    period = Period.now(kind, settings.reports.timezone, at)
    try:
        done = await publish(
            settings, client, kind, period=period, send=True, trigger=trigger, now=at
        )
    except Exception as exc:  # a failed run must not stop the scheduler; the next one retries
        log.error("scheduler.report_failed", report=period.key, error=str(exc)[:500])
        return None
    log.info("scheduler.report_done", report=period.key, trigger=trigger,
             deliveries=[(d.channel, d.status) for d in done.deliveries])  # fmt: skip
    return done


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_scheduler(
    settings: Settings, client: Client, clock: Callable[[], datetime] | None = None
) -> AsyncIOScheduler:
    """An AsyncIO scheduler with the weekly and monthly jobs (not started).

    ``clock`` tells a job what time it is when it runs (tests replay a given day).
    """
    cfg = settings.reports
    scheduler = AsyncIOScheduler(
        timezone=ZoneInfo(cfg.timezone),
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": cfg.misfire_grace_s,
        },
    )
    for kind, trig in triggers(settings).items():
        scheduler.add_job(run_job, trig, args=(settings, client, kind, None, "schedule", clock),
                          id=f"report-{kind}",
                          name=f"{kind} report", replace_existing=True)  # fmt: skip
    return scheduler


async def catch_up(settings: Settings, client: Client, now: datetime | None = None) -> list[str]:
    """Run the reports whose scheduled time passed within the grace time (e.g. while down)."""
    now = now or datetime.now(UTC)
    ran: list[str] = []
    for kind, trig in triggers(settings).items():
        fire = missed(trig, now, settings.reports.misfire_grace_s)
        if fire is not None:
            await run_job(settings, client, kind, at=fire, trigger="catch-up")
            ran.append(kind)
    return ran


async def _serve(settings: Settings, client: Client) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await catch_up(settings, client)
    scheduler = build_scheduler(settings, client)
    scheduler.start()
    for job in scheduler.get_jobs():
        console.print(f"{job.name}: next at {job.next_run_time.isoformat()}")
    await stop.wait()
    scheduler.shutdown(wait=True)


def scheduler(ctx: typer.Context) -> None:
    """Send the weekly and monthly reports on their schedules (reports.weekly_cron,
    reports.monthly_cron, in reports.timezone) until stopped with Ctrl-C or SIGTERM.
    A report missed while the scheduler was down is sent on start (within
    reports.misfire_grace_s); a report already sent is never sent twice."""
    from sinks.clickhouse import migrate

    settings = settings_from(ctx)
    try:
        ZoneInfo(settings.reports.timezone)
        triggers(settings)
    except (ValueError, KeyError) as exc:
        raise typer.BadParameter(
            f"{exc}: check LEADSTREAM_REPORTS__TIMEZONE and the *_CRON settings"
        ) from exc
    refuse_placeholder_secrets(settings)
    client = open_store(settings)
    try:
        migrate(client, settings.clickhouse.database)
        asyncio.run(_serve(settings, client))
    finally:
        client.close()
