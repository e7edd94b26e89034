"""The ClickHouse sink: what the stream produced for ClickHouse, inserted in large batches.

It consumes ``events.valid``, ``leads.scored`` and ``deadletter`` in its own consumer
group (``<app_id>.sink``), buffers rows per table for up to ``sink_flush_s`` seconds or
``sink_max_rows`` rows, inserts one columnar batch per table, and only then commits the
offsets of everything it buffered. A crash replays from the last commit; the tables
collapse repeated rows (ReplacingMergeTree keyed by event id), so every valid event is
in ClickHouse once. On a rebalance or a stop, the buffer is flushed and committed before
the partitions move. Why a separate step: see sinks/row_stream.py (an insert costs tens
of milliseconds whatever its size, so it must not be paid per consumer batch, nor on the
scoring latency).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service

from agents.stream import SERVICE_LOGGER, group_consumer, until_ready
from config.settings import Settings
from sinks.clickhouse import write_with_retry
from sinks.metrics import Metrics
from sinks.row_stream import decode
from sinks.rows import Row, TableSink

log = structlog.get_logger(__name__)


class _FlushOnRevoke(ConsumerRebalanceListener):
    def __init__(self, sink: SinkStream) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.sink.checkpoint()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("sink.partitions_assigned", partitions=len(assigned))


class SinkStream(Service):
    """Insert rows from the stream's topics into ClickHouse, a large batch at a time.

    Parameters
    ----------
    settings
        Topics, group, flush interval and size.
    sinks
        One ClickHouse sink per table.
    metrics
        Sink metrics (batches, rows, failures).
    prepare
        Runs once before subscribing, until it succeeds: the topic guard creates the
        missing topics there, so that the subscription finds every one of them.
    """

    logger = SERVICE_LOGGER

    def __init__(
        self,
        settings: Settings,
        sinks: Mapping[str, TableSink],
        metrics: Metrics,
        prepare: Callable[[], Awaitable[object]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.sinks = sinks
        self.metrics = metrics
        self.prepare = prepare
        t = settings.kafka.topics
        self.roles = {t.valid: "valid", t.scored: "scored", t.deadletter: "deadletter"}
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()
        self._rows: dict[str, list[Row]] = {}
        self._buffered = 0
        self._offsets: dict[TopicPartition, int] = {}
        self._since = time.monotonic()

    @property
    def group_id(self) -> str:
        """The sink's consumer group."""
        return f"{self.settings.kafka.app_id}.sink"

    async def on_start(self) -> None:
        if self.prepare is not None:
            await until_ready(self.prepare)
        self.consumer = group_consumer(self.settings, self.group_id)
        self.consumer.subscribe(list(self.roles), listener=_FlushOnRevoke(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            try:
                await self.checkpoint()
            except Exception as exc:  # ClickHouse away at the stop: the next start replays
                log.error("sink.stopped_without_flush", error=repr(exc)[:300])
            await self.consumer.stop()
            self.consumer = None

    @Service.task
    async def _consume(self) -> None:
        k = self.settings.kafka
        while not self.should_stop:
            consumer = self.consumer
            if consumer is None:
                return
            try:
                fetched = await consumer.getmany(timeout_ms=200, max_records=k.sink_max_rows)
            except KafkaError as exc:
                log.warning("sink.fetch_failed", error=repr(exc)[:300])
                await self.sleep(1.0)
                continue
            async with self._lock:
                self._buffer(fetched)
            if self._buffered >= k.sink_max_rows or (
                self._buffered and time.monotonic() - self._since >= k.sink_flush_s
            ):
                await self.checkpoint()

    def _buffer(self, fetched: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in fetched.items():
            role = self.roles[tp.topic]
            for r in records:
                try:
                    table, row = decode(role, r.value)
                except (ValueError, KeyError, TypeError) as exc:  # not ours to stop on
                    log.error("sink.undecodable", topic=tp.topic, partition=tp.partition,
                              offset=r.offset, error=repr(exc)[:200])  # fmt: skip
                    continue
                self._rows.setdefault(table, []).append(row)
                self._buffered += 1
            if records:
                if not self._offsets:
                    self._since = time.monotonic()
                self._offsets[tp] = records[-1].offset + 1

    async def checkpoint(self) -> None:
        """Insert what is buffered (one batch per table), then commit its offsets.

        An insert that keeps failing is retried (waiting longer each time) and holds the
        consumer: nothing is committed that is not in ClickHouse.
        """
        async with self._lock:
            if not self._offsets:
                return
            for table, rows in self._rows.items():
                await self._insert(table, rows)
            offsets, self._offsets, self._rows, self._buffered = self._offsets, {}, {}, 0
            self._since = time.monotonic()
            if self.consumer is None:
                return
            try:
                await self.consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:  # replayed later, harmlessly
                log.warning("sink.commit_failed", error=repr(exc)[:300])

    async def _insert(self, table: str, rows: list[Row]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await write_with_retry(self.sinks[table], rows, self.metrics)
                return
            except Exception as exc:  # ClickHouse away: the same rows again, later
                if self.should_stop:
                    raise
                wait = min(0.5 * 2 ** min(attempt - 1, 6), 30.0)
                log.error("sink.insert_failed", table=table, rows=len(rows), attempt=attempt,
                          retry_in_s=wait, error=repr(exc)[:300])  # fmt: skip
                await asyncio.sleep(wait)
