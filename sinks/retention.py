"""Retention: how long ClickHouse keeps each table, from the settings, as table TTLs.

Migration 0008 sets the default TTLs; :func:`apply_retention` changes a table's
TTL only when the settings ask for another one, because ``MODIFY TTL``
rewrites the table's parts. Rows past their TTL are dropped at the next merge.
"""

from __future__ import annotations

import re

import structlog
from clickhouse_connect.driver.client import Client

from config.settings import RetentionSettings

log = structlog.get_logger(__name__)

#: table -> (the retention setting it follows, the time column its TTL counts from)
RETENTION_TABLES: dict[str, tuple[str, str]] = {
    "leads": ("events_days", "toDateTime(occurred_at)"),
    "touchpoints": ("events_days", "toDateTime(occurred_at)"),
    "conversions": ("events_days", "toDateTime(occurred_at)"),
    "scored_leads": ("scores_days", "toDateTime(occurred_at)"),
    "training_examples": ("training_days", "toDateTime(labelled_at)"),
    "rejected_events": ("rejected_days", "toDateTime(received_at)"),
    "spend": ("spend_days", "date"),
}

_TTL = re.compile(r" TTL (.+?)(?: SETTINGS |$)")


def ttl_expression(table: str, retention: RetentionSettings) -> str | None:
    """The TTL expression ``table`` should have; None means keep rows forever.

    >>> ttl_expression("leads", RetentionSettings(events_days=30))
    'toDateTime(occurred_at) + toIntervalDay(30)'
    >>> ttl_expression("spend", RetentionSettings(spend_days=0)) is None
    True
    """
    setting, column = RETENTION_TABLES[table]
    days = int(getattr(retention, setting))
    return f"{column} + toIntervalDay({days})" if days else None


def apply_retention(client: Client, database: str, retention: RetentionSettings) -> dict[str, str]:
    """Give each table the TTL the settings ask for; returns the tables changed and how.

    Call after :func:`sinks.clickhouse.migrate`. Tables already right are left alone.
    """
    rows = client.query(
        "SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
        parameters={"db": database},
    ).result_rows
    current = {name: _current_ttl(engine) for name, engine in rows}
    changed: dict[str, str] = {}
    for table in RETENTION_TABLES:
        if table not in current:
            continue
        want = ttl_expression(table, retention)
        if want == current[table]:
            continue
        if want is None:
            client.command(f"ALTER TABLE {database}.{table} REMOVE TTL")
            changed[table] = "kept forever"
        else:
            client.command(f"ALTER TABLE {database}.{table} MODIFY TTL {want}")
            changed[table] = want
        log.info("clickhouse.retention", table=table, ttl=changed[table])
    return changed


def _current_ttl(engine_full: str) -> str | None:
    """The TTL clause of a table's full engine description, if it has one.

    >>> _current_ttl("MergeTree ORDER BY x TTL date + toIntervalDay(5) SETTINGS index_granularity = 8192")
    'date + toIntervalDay(5)'
    """
    match = _TTL.search(engine_full)
    return match[1].strip() if match else None
