"""`leadstream forget`: erase a person's data everywhere, by e-mail or lead id."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli._context import settings_from
from cli._errors import EXIT_CONFIG, fail, open_store, require_services
from config.settings import Settings

console = Console(stderr=True)


def forget(
    ctx: typer.Context,
    email: Annotated[
        str | None,
        typer.Option(help="erase every lead that used this e-mail address", show_default=False),
    ] = None,
    lead_id: Annotated[
        list[str] | None,
        typer.Option("--lead-id", help="erase this lead (repeatable)", show_default=False),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Erase a person from ClickHouse, Redis and the keyed topics, and record the erasure.

    ClickHouse rows of every table holding the lead, dead letters naming it, its Redis
    state (engagement, snapshot, pending label, dedup keys) and a tombstone on
    leads.scored and training.examples. The erasure is recorded without personal data.
    With embedded ClickHouse (chDB), stop the worker first: one process per data folder.
    """
    if (email is None) == (not lead_id):
        raise typer.BadParameter("give either --email or --lead-id (not both)")
    settings = settings_from(ctx)
    try:
        key = settings.require_pii_key()
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    require_services(settings, broker=True, redis=True)
    what = "the leads with this e-mail address" if email else f"{len(lead_id or [])} lead(s)"
    if not yes and not typer.confirm(f"Erase {what} everywhere? This cannot be undone."):
        raise typer.Exit(1)
    with console.status("erasing"):
        erasures = asyncio.run(_run(settings, key, email, list(lead_id or [])))
    table = Table(title="erased")
    for col in ("erasure", "leads", "ClickHouse rows", "Redis keys", "tombstones"):
        table.add_column(col, justify="left" if col == "erasure" else "right")
    for e in erasures:
        table.add_row(e.erasure_id, str(len(e.lead_ids)), str(e.rows_total),
                      str(e.redis_keys_deleted), str(e.tombstones))  # fmt: skip
    console.print(table)
    if email and not any(e.lead_ids for e in erasures):
        console.print("no lead used this e-mail address; the request was recorded")


async def _run(settings: Settings, key: bytes, email: str | None, lead_ids: list[str]) -> list[Any]:
    import redis.asyncio as aioredis
    from aiokafka import AIOKafkaProducer

    from sinks.clickhouse import migrate
    from sinks.forget import Forgetter
    from streaming.producer import bootstrap_servers

    clickhouse = open_store(settings)
    migrate(clickhouse, settings.clickhouse.database)
    redis = aioredis.from_url(settings.redis.url)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings.kafka.bootstrap), enable_idempotence=False
    )
    try:
        await producer.start()
    except Exception as exc:  # aiokafka raises its own connection errors; name the fix
        clickhouse.close()
        await redis.aclose()
        raise typer.BadParameter(
            f"cannot reach the broker at {settings.kafka.bootstrap} ({exc}); start it "
            "(`leadstream services up`) or set LEADSTREAM_KAFKA__BOOTSTRAP"
        ) from exc

    async def send(topic: str, k: bytes, value: None) -> Any:
        return await producer.send_and_wait(topic, value, key=k)

    topics = settings.kafka.topics
    forgetter = Forgetter(
        clickhouse, settings.clickhouse.database, redis, settings.redis.key_prefix, send,
        (topics.scored, topics.training), key,
    )  # fmt: skip
    try:
        if email is not None:
            return [await forgetter.forget_email(email)]
        return [await forgetter.forget_lead(lid) for lid in lead_ids]
    finally:
        await producer.stop()
        await redis.aclose()
        clickhouse.close()
