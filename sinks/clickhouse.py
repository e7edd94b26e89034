"""ClickHouse: one connection per process, versioned migrations, and a small batch sink.

The same clickhouse-connect code talks to chDB (embedded, ``interface="chdb"``)
and to a ClickHouse server over HTTP (production, a DSN). chDB allows one
process per data directory and its client is synchronous: calls run in a
worker thread under a lock so the event loop keeps consuming.

The process that owns a chDB directory can serve it to the others with
:func:`start_relay` (:mod:`sinks.store_relay`); :func:`connect` in another
process then gets clickhouse-connect's HTTP client to that relay.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import clickhouse_connect
import structlog
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.insert import InsertContext

from config.settings import ClickHouseSettings
from sinks.exceptions import SinkBackpressureError, SinkError
from sinks.metrics import Metrics
from sinks.rows import COLUMNS, Row, TableSink
from sinks.store_relay import RelayAddress, find_relay
from sinks.store_relay import StoreRelay as StoreRelay
from sinks.store_relay import start_relay as start_relay

log = structlog.get_logger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# Errors after which retrying the same batch later is the right answer.
_RETRYABLE = ("TOO_MANY_PARTS", "TIMEOUT", "Timeout", "MEMORY_LIMIT", "Connection refused")


def connect(cfg: ClickHouseSettings) -> Client:
    """A client for the configured ClickHouse: a server DSN if set, else chDB in ``chdb_path``.

    When another process holds ``chdb_path`` and serves it with its store relay, the
    client is clickhouse-connect's HTTP client to that relay.
    """
    if not _IDENT.match(cfg.database):
        raise ValueError(f"clickhouse database name {cfg.database!r} is not a plain identifier")
    if cfg.dsn:
        return clickhouse_connect.get_client(dsn=cfg.dsn)
    cfg.chdb_path.mkdir(parents=True, exist_ok=True)
    # A live relay of another process means that process holds the directory: go
    # straight to it, instead of a failed engine start (which also prints chDB's own
    # "Cannot lock file" to standard error).
    relay = _other_relay(cfg)
    if relay is not None:
        return _via_relay(cfg, relay)
    try:
        return clickhouse_connect.get_client(interface="chdb", path=str(cfg.chdb_path))
    except Exception as exc:  # chDB raises its own types; name the fix.
        relay = _other_relay(cfg)  # its owner may have started the relay meanwhile
        if relay is not None:
            return _via_relay(cfg, relay)
        raise SinkError(
            f"cannot open chDB at {cfg.chdb_path}: {exc}. Only one process may use a chDB "
            "directory: run the store's owner with its relay (`leadstream worker`, which "
            "serves it) or stop the other leadstream process, or set "
            "LEADSTREAM_CLICKHOUSE__CHDB_PATH"
        ) from exc


def _other_relay(cfg: ClickHouseSettings) -> RelayAddress | None:
    relay = find_relay(cfg.chdb_path)
    return relay if relay is not None and relay.pid != os.getpid() else None


def _via_relay(cfg: ClickHouseSettings, relay: RelayAddress) -> Client:
    """clickhouse-connect's HTTP client to ``relay``: no session (the relay keeps none, and
    the API's pool then shares it between threads), no compression (loopback)."""
    try:
        client = clickhouse_connect.get_client(
            host=relay.host, port=relay.port, interface="http", username=relay.user,
            password=relay.password, compress=False, autogenerate_session_id=False,
        )  # fmt: skip
    except ClickHouseError as exc:
        raise SinkError(
            f"the store {cfg.chdb_path} is served by process {relay.pid} at {relay.url}, "
            f"which refused the connection: {str(exc)[:300]}"
        ) from exc
    log.debug(
        "clickhouse.via_relay", url=relay.url, owner_pid=relay.pid, chdb_path=str(cfg.chdb_path)
    )
    return client


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations as (version, name, SQL), in order."""
    folder = resources.files("config") / "clickhouse" / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(client: Client, database: str) -> list[int]:
    """Apply the migrations not yet recorded in ``schema_migrations``; returns their versions."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    # `database` was checked against _IDENT by `connect`: configuration, not user input.
    sql = f"SELECT version FROM {database}.schema_migrations"  # noqa: S608
    done = {row[0] for row in client.query(sql).result_rows}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        for statement in _statements(sql.replace("{db}", database)):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"]
        )
        log.info("clickhouse.migrated", version=version, name=name)
        applied.append(version)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, dropping comments.

    >>> _statements("-- a table\\nCREATE TABLE t (x UInt8) ENGINE = Memory;\\n\\nSELECT 1;")
    ['CREATE TABLE t (x UInt8) ENGINE = Memory', 'SELECT 1']
    """
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class ClickHouseSink:
    """Bulk-inserts rows into one table; batching and retries belong to the caller.

    Parameters
    ----------
    table
        A table from :data:`sinks.rows.COLUMNS`.
    client
        A shared clickhouse-connect client.
    database
        The database holding the table.
    lock
        Shared by every sink on the same client (chDB calls are not concurrent).
    """

    def __init__(self, table: str, client: Client, database: str, lock: threading.Lock) -> None:
        if table not in COLUMNS:
            raise ValueError(f"unknown table {table!r}; known: {', '.join(COLUMNS)}")
        self.table = table
        self.client = client
        self.database = database
        self.lock = lock
        self._columns = list(COLUMNS[table])
        self._context: InsertContext | None = None

    def setup(self) -> None:
        """Check that the table exists (migrations create it)."""
        self._run(self.client.command, f"EXISTS TABLE {self.database}.{self.table}")

    async def write(self, rows: Sequence[Row]) -> None:
        """Insert one batch; raises :class:`SinkBackpressureError` when ClickHouse says slow down."""
        if rows:
            await asyncio.to_thread(self._insert, rows)

    async def close(self) -> None:
        """Nothing to release: the client is shared and closed by its owner."""

    def _insert(self, rows: Sequence[Row]) -> None:
        # One insert context per table, kept: building one asks the server for the
        # table's column types, a round trip that would otherwise precede every insert.
        # The rows go in as columns (one list per column, transposed in C by zip).
        if self._context is None:
            self._context = self._run(
                self.client.create_insert_context,
                f"{self.database}.{self.table}",
                column_names=self._columns,
                column_oriented=True,
            )
        context = self._context
        context.data = [list(column) for column in zip(*rows, strict=True)]
        self._run(self.client.insert, context=context)

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with self.lock:
                return fn(*args, **kwargs)
        except (ClickHouseError, OSError) as exc:
            text = str(exc)
            if any(marker in text for marker in _RETRYABLE):
                raise SinkBackpressureError(f"{self.table}: {text[:300]}", retry_after=2.0) from exc
            raise SinkError(f"{self.table}: insert failed: {text[:500]}") from exc


async def write_with_retry(
    sink: TableSink, rows: Sequence[Row], metrics: Metrics, attempts: int = 8
) -> None:
    """Write a batch, waiting and retrying on backpressure; the consumer waits meanwhile."""
    for attempt in range(1, attempts + 1):
        try:
            with metrics.sink_batch_seconds.time():
                await sink.write(rows)
        except SinkBackpressureError as exc:
            metrics.sink_failures.labels(table=sink.table).inc()
            if attempt == attempts:
                raise
            delay = min(exc.retry_after * attempt, 30.0)
            log.warning("sink.backpressure", table=sink.table, retry_in_s=delay, error=str(exc))
            await asyncio.sleep(delay)
        except SinkError:
            metrics.sink_failures.labels(table=sink.table).inc()
            raise
        else:
            metrics.sink_batches.labels(table=sink.table).inc()
            metrics.sink_rows.labels(table=sink.table).inc(len(rows))
            return


class DirectRows:
    """Rows written straight into ClickHouse, durable when :meth:`write` returns.

    What the pipeline uses where it owns the store and nothing consumes its topics:
    tests, benchmarks replaying the pipeline in-process, the learner's own tables.
    """

    def __init__(self, sinks: Mapping[str, TableSink], metrics: Metrics) -> None:
        self.sinks = sinks
        self.metrics = metrics

    async def write(self, table: str, rows: Sequence[Row]) -> list[Any]:
        """Insert ``rows`` now (with retries on backpressure); nothing left to await."""
        if rows:
            await write_with_retry(self.sinks[table], rows, self.metrics)
        return []
