"""`leadstream report`: build a report now, export it and optionally deliver it.

:func:`publish` is the one path from data to delivered report; the scheduler calls it too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from clickhouse_connect.driver.client import Client
from rich.console import Console

from cli._context import settings_from
from cli._errors import open_store, refuse_placeholder_secrets
from config.settings import Settings
from reporting._period import Period, PeriodKind
from reporting.delivery import Deliverer, DeliveryResult
from reporting.exports import FORMATS, Format, export, render_html
from reporting.report import Report, build_report

console = Console(stderr=True)


@dataclass
class Published:
    """What :func:`publish` did: the report (None when skipped), its files, the deliveries."""

    period: Period
    report: Report | None = None
    files: list[Path] = field(default_factory=list)
    deliveries: list[DeliveryResult] = field(default_factory=list)


async def publish(
    settings: Settings, client: Client, kind: PeriodKind, *, period: Period | None = None,
    formats: tuple[Format, ...] | None = None, out_dir: Path | None = None, send: bool = False,
    force: bool = False, trigger: str = "command", now: datetime | None = None,
) -> Published:  # fmt: skip
    """Build, export and (with ``send``) deliver the report of ``period``.

    With ``send`` and without ``force``, a period already delivered through every
    configured channel is not even built again.
    """
    cfg = settings.reports
    period = period or Period.now(kind, cfg.timezone, now)
    deliverer = Deliverer(settings, client)
    out = Published(period)
    if send and not force and deliverer.channels():
        pending = [c for c in deliverer.channels() if not await deliverer.sent(period.key, c)]
        if not pending:
            out.deliveries = [DeliveryResult(c, "skipped", 0) for c in deliverer.channels()]
            return out
    report = await asyncio.to_thread(build_report, client, settings, kind, period, now=now)
    folder = (out_dir or cfg.out_dir) / period.key
    out.report = report
    out.files = await asyncio.to_thread(export, report, formats or cfg.formats, folder)
    if send:
        attach = [p for p in out.files if p.suffix in (".pdf", ".xlsx")]
        out.deliveries = await deliverer.deliver(
            report, render_html(report), attach, force=force, trigger=trigger
        )
    return out


def _period_of_the_data(
    client: Client, settings: Settings, kind: PeriodKind, chosen: Period | None
) -> Period | None:
    """The period to report on: ``chosen``, else the last complete one of the data.

    Event time is the data's own clock: on replayed or generated history the last
    wall-clock week is empty. Says which period it took, and where the data is when
    the period has none.
    """
    from reporting.queries import Analytics

    span = Analytics(client, settings.clickhouse.database).data_span()
    if span is None:
        console.print(
            "[yellow]the store holds no leads yet[/]: run `leadstream worker` and send events"
            " (`leadstream generate`), or try `leadstream demo`",
            soft_wrap=True,
        )
        return chosen
    first, last = span
    period = chosen or Period.last_complete(kind, last + timedelta(days=1))
    if period.end < first or period.start > last:
        latest = Period.last_complete(kind, last + timedelta(days=1))
        console.print(
            f"[yellow]no leads in {period.label}[/]: the data runs from {first} to {last};"
            f" `leadstream report --period {kind} --for {latest.start}` reports on"
            f" {latest.label}",
            soft_wrap=True,
        )
    elif chosen is None:
        console.print(
            f"reporting on {period.label}, the last complete {period.noun} of the data"
            f" (latest lead {last}); --for DAY picks another",
            soft_wrap=True,
        )
    return period


def report(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="weekly or monthly")] = "weekly",
    formats: Annotated[
        str, typer.Option("--format", help="comma-separated: pdf,html,csv,xlsx")
    ] = "pdf,html,csv,xlsx",
    send: Annotated[
        bool,
        typer.Option(
            "--send",
            help="deliver by e-mail and webhook (LEADSTREAM_SMTP__*, LEADSTREAM_WEBHOOK__URL)",
        ),
    ] = False,
    force: Annotated[bool, typer.Option(help="send even if this period was already sent")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for the files (default: reports.out_dir)")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(
            "--for",
            help="a day (YYYY-MM-DD) inside the period to report on; default: the last complete"
            " period of the data (by the latest lead's time)",
        ),
    ] = None,
) -> None:
    """Build the weekly or monthly report now: executive summary, indicators, charts, tables
    and budget recommendations, as PDF, HTML, CSV (one file per table) and Excel.

    With the embedded store (chDB, no LEADSTREAM_CLICKHOUSE__DSN) stop the worker first:
    one process opens it at a time."""
    from sinks.clickhouse import migrate

    settings = settings_from(ctx)
    refuse_placeholder_secrets(settings)
    if period not in ("weekly", "monthly"):
        raise typer.BadParameter("choose weekly or monthly", param_hint="--period")
    kind: PeriodKind = "weekly" if period == "weekly" else "monthly"
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise typer.BadParameter(
            f"unknown format(s) {bad}; choose from {','.join(FORMATS)}", param_hint="--format"
        )
    target = None
    if day:
        try:
            target = Period.containing(kind, date.fromisoformat(day))
        except ValueError as exc:
            raise typer.BadParameter(
                f"{day!r} is not a YYYY-MM-DD date", param_hint="--for"
            ) from exc
    client = open_store(settings)
    try:
        migrate(client, settings.clickhouse.database)
        target = _period_of_the_data(client, settings, kind, target)
        with console.status(f"building the {kind} report"):
            done = asyncio.run(
                publish(settings, client, kind, period=target, formats=tuple(chosen),  # type: ignore[arg-type]
                        out_dir=out, send=send, force=force)
            )  # fmt: skip
    finally:
        client.close()
    for path in done.files:
        console.print(f"wrote {path}")
    for d in done.deliveries:
        colour = {"sent": "green", "skipped": "yellow", "failed": "red"}[d.status]
        console.print(f"[{colour}]{d.channel}: {d.status}[/] {d.error}")
    if send and not done.deliveries:
        console.print(
            "[yellow]nothing to send: set LEADSTREAM_SMTP__HOST and LEADSTREAM_SMTP__RECIPIENTS, or LEADSTREAM_WEBHOOK__URL[/]"
        )
    if any(d.status == "failed" for d in done.deliveries):
        raise typer.Exit(1)
