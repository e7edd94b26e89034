"""The raw topics, consumed in batches: a consumer-group loop inside the Faust worker.

Faust's per-event stream iteration costs about 170 µs per event here (several asyncio
tasks per message): an agent that does nothing tops out near 6,000 events/s on these
cores. The raw topics carry the volume, so they are read by this service instead: one
aiokafka consumer of the group ``<app_id>.stream`` takes what the broker has
(``getmany``, up to ``batch_size`` records, waiting at most ``batch_within_s`` when
idle), hands each topic's records to the pipeline as one batch, and commits the batch's
offsets only once its effects are durable (ClickHouse rows written, Redis state
changed, produced messages acknowledged). Faust stays the application around it:
worker lifecycle and signals, the learner agent, the timers.

At-least-once, as before: a batch that fails is handled again (same records) until it
succeeds, holding the consumer; a crash before the commit replays the batch, whose
effects are idempotent. On a rebalance the revoke callback waits for the batch in hand
and commits it before the partitions move, so the next owner starts where this one
stopped; on SIGTERM the batch in hand finishes and is committed before the consumer
leaves.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mode import Service

from config.settings import Settings
from sinks.metrics import Metrics
from streaming.pipeline import Message, Pipeline
from streaming.producer import bootstrap_servers

log = structlog.get_logger(__name__)
#: mode's own notes on our services (starting, stopping) are not news: warnings only. The
#: worker logs before leadstream's log handlers replace Faust's, in Faust's format.
SERVICE_LOGGER = logging.getLogger("leadstream.services")
SERVICE_LOGGER.setLevel(logging.WARNING)

#: Longest wait between two attempts at a batch that keeps failing.
MAX_RETRY_WAIT_S = 30.0
#: The order kinds are handled in within one fetch: a lead before its touchpoints and
#: outcomes when they arrive together (the label join copes with any order).
KIND_ORDER = ("lead", "touchpoint", "conversion", "spend")


def group_consumer(settings: Settings, group_id: str) -> AIOKafkaConsumer:
    """A consumer of ``group_id`` that commits by hand, from committed offsets or the earliest."""
    k = settings.kafka
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(k.bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a broker's "latest" is not trusted (INFRA.md)
        session_timeout_ms=int(k.session_timeout_s * 1000),
        heartbeat_interval_ms=int(k.heartbeat_interval_s * 1000),
        fetch_max_wait_ms=max(1, int(k.batch_within_s * 1000)),
        # A subscribed topic that appears later (created by another worker, or by the
        # broker on a first produce) is picked up within seconds, not aiokafka's 5 minutes.
        metadata_max_age_ms=5000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


async def until_ready(prepare: Callable[[], Awaitable[object]]) -> None:
    """Run ``prepare`` until it succeeds (the broker may not answer yet), waiting between."""
    for attempt in itertools.count(1):
        try:
            await prepare()
            return
        except Exception as exc:  # the broker not ready yet: try again
            wait = min(0.5 * attempt, 5.0)
            log.warning("stream.prepare_failed", attempt=attempt, retry_in_s=wait,
                        error=repr(exc)[:300])  # fmt: skip
            await asyncio.sleep(wait)


class _Revoke(ConsumerRebalanceListener):
    def __init__(self, stream: BatchStream) -> None:
        self.stream = stream

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in hand finishes and is committed before the partitions move.
        async with self.stream.batch_lock:
            log.info("stream.partitions_revoked", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("stream.partitions_assigned", partitions=len(assigned))


class BatchStream(Service):
    """Consume the raw topics in batches and hand them to the pipeline.

    Parameters
    ----------
    settings
        The worker's settings (topics, group, batch size and wait).
    pipeline
        Returns the worker's pipeline (built inside the running event loop).
    before_batch
        Runs before each attempt at a batch (the topic guard refreshes the producer's
        metadata there); a failure fails the attempt, which is retried.
    prepare
        Runs once before the first fetch, until it succeeds: the topic guard creates the
        missing topics with their partitions there, before anything produced to one could
        have a broker auto-create it with its own default.
    metrics
        Where the consumer lag is exported.
    """

    logger = SERVICE_LOGGER

    def __init__(
        self,
        settings: Settings,
        pipeline: Callable[[], Pipeline],
        before_batch: Callable[[], Awaitable[None]] | None,
        prepare: Callable[[], Awaitable[object]] | None,
        metrics: Metrics,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.pipeline = pipeline
        self.before_batch = before_batch
        self.prepare = prepare
        self.metrics = metrics
        self.kinds = {name: kind for name, kind in settings.kafka.topics.raw().items()}
        self.batch_lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
        self._last_lag_export = 0.0

    @property
    def group_id(self) -> str:
        """The consumer group of the raw topics (Faust's own group keeps the learner)."""
        return f"{self.settings.kafka.app_id}.stream"

    async def on_start(self) -> None:
        if self.prepare is not None:
            await until_ready(self.prepare)
        self.consumer = group_consumer(self.settings, self.group_id)
        self.consumer.subscribe(list(self.kinds), listener=_Revoke(self))
        await self.consumer.start()

    async def on_stop(self) -> None:
        if self.consumer is not None:
            async with self.batch_lock:  # the batch in hand is finished and committed first
                await self.consumer.stop()
            self.consumer = None

    @Service.task
    async def _consume(self) -> None:
        k = self.settings.kafka
        within_ms = max(1, int(k.batch_within_s * 1000))
        while not self.should_stop:
            consumer = self.consumer
            if consumer is None:
                return
            try:
                fetched = await consumer.getmany(timeout_ms=within_ms, max_records=k.batch_size)
            except KafkaError as exc:  # the broker away: the next fetch tries again
                log.warning("stream.fetch_failed", error=repr(exc)[:300])
                await self.sleep(1.0)
                continue
            if not fetched:
                await self._export_lag(consumer)
                continue
            async with self.batch_lock:
                if await self._handle(fetched):
                    await self._commit(consumer, fetched)
            await self._export_lag(consumer)

    async def _handle(self, fetched: dict[TopicPartition, list[Any]]) -> bool:
        """Hand each topic's records to the pipeline; False if stopped before it succeeded."""
        by_kind: dict[str, list[Message]] = {}
        for tp, records in fetched.items():
            batch = by_kind.setdefault(self.kinds[tp.topic], [])
            batch.extend(
                Message(tp.partition, r.offset, r.key, r.value, r.timestamp / 1000.0)
                for r in records
            )
        kinds = [kind for kind in KIND_ORDER if kind in by_kind]
        for i, kind in enumerate(kinds):
            if not await self._until_done(kind, by_kind[kind], check=i == 0):
                return False
        return True

    async def _until_done(self, kind: str, batch: list[Message], check: bool) -> bool:
        """Handle one batch until it succeeds, waiting longer after each failure.

        ``before_batch`` (broker round trips) runs once per fetch, before its first batch
        (``check``), and again before every retry. Retrying the same batch is safe
        (replays are idempotent) and holds the consumer. Stopping gives up without a
        commit: the next owner replays the batch.
        """
        for attempt in itertools.count(1):
            try:
                if self.before_batch is not None and (check or attempt > 1):
                    await self.before_batch()
                await self.pipeline().handle_raw(kind, batch)
                return True
            except Exception as exc:  # any failure: the same batch again, after a wait
                wait = min(0.5 * 2 ** min(attempt - 1, 10), MAX_RETRY_WAIT_S)
                log.error("batch.failed", agent=kind, attempt=attempt, retry_in_s=wait,
                          error=repr(exc)[:500])  # fmt: skip
                if self.should_stop:
                    return False
                await self.sleep(wait)
                if self.should_stop:
                    return False
        return False  # unreachable: the loop above returns

    async def _commit(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items() if records}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on (a rebalance) or the broker is away: the batch's effects are
            # durable and idempotent, so whoever owns the partitions replays it harmlessly.
            log.warning("stream.commit_failed", error=repr(exc)[:300])

    async def _export_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Consumer lag per partition, every few seconds (the broker's high-water mark)."""
        now = time.monotonic()
        if now - self._last_lag_export < 5.0:
            return
        self._last_lag_export = now
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(0, highwater - position)
            )
