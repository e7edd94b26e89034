"""Rows a command stores in ClickHouse itself (when no worker does it for it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from config.settings import Settings


def insert_advisory(
    settings: Settings, table: str, records: Sequence[dict[str, Any]], console: Console
) -> bool:
    """Insert ``records`` into ``table``; a ClickHouse that cannot be opened (a chDB directory
    held by a running worker) only warns. Returns whether the rows were stored."""
    from sinks.clickhouse import connect, migrate
    from sinks.exceptions import SinkError
    from sinks.rows import COLUMNS, mapping_row

    try:
        client = connect(settings.clickhouse)
    except SinkError as exc:
        console.print(f"[yellow]not stored in ClickHouse ({table}):[/] {exc}")
        return False
    try:
        db = settings.clickhouse.database
        migrate(client, db)
        client.insert(f"{db}.{table}", [mapping_row(table, r) for r in records],
                      column_names=list(COLUMNS[table]))  # fmt: skip
    finally:
        client.close()
    return True
