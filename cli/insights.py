"""`leadstream insights`: which segments convert better or worse, and what drives the model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli._context import settings_from
from cli._errors import open_store
from config.settings import Settings

if TYPE_CHECKING:
    from online_models.bundle import ModelBundle

insights_app = typer.Typer(
    help="What marks successful leads (segments) and what drives the model (importance).",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

_DATES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


class Order(StrEnum):
    """How segments are ranked."""

    impact = "impact"
    lift = "lift"
    leads = "leads"


class Direction(StrEnum):
    """Which segments are shown."""

    HIGHER = "higher"
    LOWER = "lower"
    BOTH = "both"


_ONLY: dict[Direction, Literal["higher", "lower"]] = {
    Direction.HIGHER: "higher",
    Direction.LOWER: "lower",
}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(1)


@contextmanager
def _clickhouse(settings: Settings) -> Iterator[Client]:
    """The configured ClickHouse, closed afterwards (chDB: one process per directory)."""
    client = open_store(settings)
    try:
        yield client
    except DatabaseError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "UNKNOWN_DATABASE" in str(exc):
            raise _fail(
                f"no leadstream tables in database {settings.clickhouse.database!r}: run"
                " `leadstream worker` or `leadstream demo` first, or point"
                " LEADSTREAM_CLICKHOUSE__DSN / LEADSTREAM_CLICKHOUSE__CHDB_PATH at its data"
            ) from exc
        raise
    finally:
        client.close()


@insights_app.command("segments")
def segments(
    ctx: typer.Context,
    since: Annotated[
        datetime | None,
        typer.Option(formats=_DATES, help="only leads created at or after (UTC)"),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(formats=_DATES, help="only leads created before (UTC)")
    ] = None,
    min_support: Annotated[
        int, typer.Option(min=1, help="segments with fewer leads are not tested")
    ] = 100,
    alpha: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="false discovery rate (Benjamini–Hochberg)")
    ] = 0.05,
    pairs: Annotated[bool, typer.Option(help="also test pairs of fields")] = True,
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="a field to segment by (repeat it); default: all of them"),
    ] = None,
    order_by: Annotated[Order, typer.Option(help="rank by impact, lift or leads")] = Order.impact,
    direction: Annotated[
        Direction, typer.Option(help="segments converting higher, lower, or both")
    ] = Direction.BOTH,
    limit: Annotated[int, typer.Option(min=1, help="at most this many segments")] = 30,
    show_all: Annotated[
        bool, typer.Option("--all", help="every tested segment, not only the significant")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Segments (one field or a pair) whose conversion rate differs from the base rate.

    A conversion is the configured target stage (LEADSTREAM_MODELS__TARGET_STAGE) within
    the horizon (LEADSTREAM_MODELS__HORIZON_DAYS); only leads whose horizon has passed
    count. Fields are tested first, then their values, then pairs of significant values,
    each level under Benjamini–Hochberg; intervals are Wilson. Fields:
    channel, industry, country, seniority, company_size, email_is_free, demo_requested,
    pricing_page_visits, pages_viewed, has_phone, utm_content.
    """
    from reporting.insights import segment_insights

    settings = settings_from(ctx)
    with (
        _clickhouse(settings) as client,
        console.status("testing segments", spinner="dots") if not as_json else _quiet(),
    ):
        try:
            report = segment_insights(
                client, settings.clickhouse.database, settings.models,
                since=_utc(since), until=_utc(until), min_support=min_support, alpha=alpha,
                pairs=pairs, fields=field, order_by=order_by.value, include_all=show_all,
                direction=_ONLY.get(direction), limit=limit,
            )  # fmt: skip
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    if as_json:
        print(json.dumps(report.model_dump(mode="json")))
        return
    console.print(
        f"{report.leads:,} leads with a known outcome (created {report.horizon_days:g}+ days"
        f" before {report.as_of:%Y-%m-%d %H:%M} UTC), {report.conversions:,} reached"
        f" {report.target_stage}: base rate {report.base_rate:.1%}"
        f" ({report.base_low:.1%}–{report.base_high:.1%})"
    )
    fields = ", ".join(
        f"{t.field} ({'significant' if t.significant else 'no effect found'})"
        for t in report.fields
    )
    console.print(f"fields: {fields or 'none tested'}")
    table = Table(
        title=f"{report.significant} of {report.tested} segments differ (FDR {report.alpha:g})"
    )
    for col in ("segment", "leads", "rate", f"{report.confidence:.0%} interval", "lift",
                "vs parts", "excess", "q"):  # fmt: skip
        table.add_column(col, justify="left" if col == "segment" else "right")
    for s in report.segments:
        colour = "green" if s.direction == "higher" else "red"
        table.add_row(
            s.label, f"{s.leads:,}", f"[{colour}]{s.rate:.1%}[/]",
            f"{s.rate_low:.1%}–{s.rate_high:.1%}", f"{s.lift:.2f}",
            f"{s.lift_over_parts:.2f}" if s.lift_over_parts is not None else "",
            f"{s.excess_conversions:+.0f}", f"{s.q_value:.2g}",
        )  # fmt: skip
    console.print(table)


@insights_app.command("importance")
def importance(
    ctx: typer.Context,
    leads: Annotated[
        int, typer.Option(min=1, help="how many of the most recent lead events to explain")
    ] = 5000,
    since: Annotated[
        datetime | None, typer.Option(formats=_DATES, help="only lead events at or after (UTC)")
    ] = None,
    by_field: Annotated[
        bool, typer.Option(help="one row per field (channel) instead of per value")
    ] = False,
    top: Annotated[int, typer.Option(min=1, help="rows shown in the table")] = 25,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Global feature importance of the current model over recent leads.

    Loads the newest published model from Redis, recomputes the features of the most
    recent lead events from ClickHouse, and reports each feature's mean absolute
    contribution to the logit, its signed mean, and the change in logit per standard
    deviation of the feature (the standardised weight).
    """
    from reporting.insights import importance_report

    settings = settings_from(ctx)
    bundle = asyncio.run(_latest_model(settings))
    with (
        _clickhouse(settings) as client,
        console.status("explaining recent leads", spinner="dots") if not as_json else _quiet(),
    ):
        report = importance_report(
            client, settings.clickhouse.database, bundle.scorer, bundle.version,
            limit=leads, since=_utc(since), by_field=by_field,
        )  # fmt: skip
    if as_json:
        print(json.dumps(report.model_dump(mode="json")))
        return
    table = Table(
        title=f"model version {report.model_version}: importance over {report.leads:,} leads"
    )
    for col in ("feature", "mean |contribution|", "share", "mean contribution", "logit per SD"):
        table.add_column(col, justify="left" if col == "feature" else "right")
    for f in report.features[:top]:
        per_sd = "" if f.logit_per_sd is None else f"{f.logit_per_sd:+.3f}"
        table.add_row(
            f.feature, f"{f.mean_abs_contribution:.3f}", f"{f.share:.1%}",
            f"{f.mean_contribution:+.3f}", per_sd,
        )  # fmt: skip
    console.print(table)


async def _latest_model(settings: Settings) -> ModelBundle:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    from online_models.bundle import ModelStore

    client = aioredis.from_url(settings.redis.url)
    try:
        bundle = await ModelStore(client, settings.redis.key_prefix).load()
    except RedisConnectionError as exc:
        raise _fail(
            "cannot reach Redis (LEADSTREAM_REDIS__URL): start it with `leadstream services up`"
            " or point the setting at your Redis"
        ) from exc
    finally:
        await client.aclose()
    if bundle is None:
        raise _fail(
            f"no model published under the Redis prefix {settings.redis.key_prefix!r}: run"
            " `leadstream worker` until it has learned, or `leadstream backfill`"
        )
    return bundle


@contextmanager
def _quiet() -> Iterator[None]:
    yield
