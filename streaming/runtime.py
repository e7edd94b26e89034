"""Builds a worker from settings: clients, sinks, metrics, the Faust app and its agents.

What a process runs depends on its roles (streaming/roles.py): only a process with the
``sink`` role opens ClickHouse; the others send the rows they make through Kafka.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import faust
import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from clickhouse_connect.driver.client import Client
from faust.app.base import BootStrategy
from prometheus_client import CollectorRegistry, start_http_server

from agents.sink import SinkStream
from agents.stream import BatchStream
from agents.stream_agents import register_learner, register_stream_jobs
from config.settings import Settings
from online_models.bundle import ModelStore
from sinks.clickhouse import ClickHouseSink, StoreRelay, connect, migrate, start_relay
from sinks.kafka import BatchSender
from sinks.metrics import Metrics
from sinks.redis_state import RedisState
from sinks.retention import apply_retention
from sinks.row_stream import TopicRows, TopicTableSink
from sinks.rows import COLUMNS, TableSink
from streaming.app import create_app, declare_topics, topic_layout
from streaming.pipeline import Pipeline, RowWriter, Sender
from streaming.roles import ALL, describe
from streaming.topic_guard import TopicGuard

log = structlog.get_logger(__name__)

#: Margin added to the label horizon before state in Redis expires.
_STATE_MARGIN_S = 14 * 86400


class Runtime:
    """One worker's parts, wired; ``run()`` blocks until the worker stops.

    Parameters
    ----------
    settings
        The settings, read once by the entry point.
    clickhouse
        An open client to reuse (the demo shares its chDB client); by default one is opened.
    registry
        Where the metrics live; a fresh registry by default.
    roles
        The parts this process runs (streaming/roles.py); all of them by default. Without
        ``sink`` it opens no ClickHouse client (``clickhouse`` is then ignored).
    """

    def __init__(
        self,
        settings: Settings,
        clickhouse: Client | None = None,
        registry: CollectorRegistry | None = None,
        roles: frozenset[str] = ALL,
    ) -> None:
        self.settings = settings
        self.roles = roles
        self.pii_key = settings.require_pii_key()
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics.create(self.registry)
        self.clickhouse: Client | None = None
        if "sink" in roles:
            self.clickhouse = clickhouse or connect(settings.clickhouse)
            migrate(self.clickhouse, settings.clickhouse.database)
            apply_retention(self.clickhouse, settings.clickhouse.database, settings.retention)
        self.app = create_app(settings)
        if "learner" not in roles:
            # Faust's own consumer serves only the learner agent: without it, this process
            # stays out of the learner's group (joining it would rebalance the learner).
            self.app.boot_strategy = BootStrategy(self.app, enable_kafka_consumer=False)
        self.topics = declare_topics(self.app, settings)
        self._pipeline: Pipeline | None = None
        self._metrics_server: Any = None
        k = settings.kafka
        self.topic_guard = TopicGuard(
            k.bootstrap, topic_layout(settings), k.replication_factor, self._producer_client,
            self.metrics.topics_created, f"{k.app_id}.broker-epoch", _exit_for_restart,
        )  # fmt: skip
        self.sender = BatchSender(self._producer)
        #: Serializes this process's chDB calls (inserts, and the relay's queries).
        self.store_lock = threading.Lock()
        self.tables: Mapping[str, TableSink] = (
            table_sinks(settings, self.clickhouse, self.store_lock)
            if self.clickhouse is not None
            else TopicTableSink.every(self.sender, k.topics.valid)
        )
        self.stream: BatchStream | None = None
        self.sink: SinkStream | None = None
        # Faust starts (and stops) the services with the app; it takes instances as well
        # as classes (App._prepare_subservice), though the decorator is typed for classes.
        if "stream" in roles:
            register_stream_jobs(self.app, settings, self.pipeline, self.topic_guard.refresh_producer)
            self.stream = BatchStream(
                settings,
                self.pipeline,
                self.topic_guard.refresh_producer,
                self.topic_guard.check,
                self.metrics,
            )
            self.app.service(cast(Any, self.stream))
        if "learner" in roles:
            register_learner(self.app, self.topics, settings, self.pipeline)
        if self.clickhouse is not None:
            self.sink = SinkStream(settings, self.tables, self.metrics, self.topic_guard.check)
            self.app.service(cast(Any, self.sink))
        log.info("worker.roles", roles=describe(roles), owns_store=self.clickhouse is not None)
        # Once at start (the sentinel must be seen before the broker can lose it), then often.
        self.app.task(self._guard_topics)
        if k.topic_check_every_s > 0:
            self.app.timer(k.topic_check_every_s, name="leadstream.topic_guard")(self._guard_topics)

    def pipeline(self) -> Pipeline:
        """The pipeline, built on first use inside the worker's event loop."""
        if self._pipeline is None:
            client = aioredis.from_url(self.settings.redis.url)
            valid = self.settings.kafka.topics.valid
            self._pipeline = build_pipeline(
                self.settings, client, self.clickhouse, self.sender, self.metrics,
                rows=lambda send: TopicRows(send, valid), sinks=self.tables,
            )  # fmt: skip
        return self._pipeline

    def _producer(self) -> AIOKafkaProducer:
        # Faust's aiokafka driver keeps its aiokafka producer in `_producer` (None until it
        # starts) and offers no public way to it; batches are built on it directly.
        producer = cast(Any, self.app.producer)._producer  # noqa: SLF001
        if producer is None:
            raise KafkaConnectionError("the producer has not started yet")
        return cast(AIOKafkaProducer, producer)

    def _producer_client(self) -> AIOKafkaClient | None:
        # Faust's aiokafka driver keeps its aiokafka producer in `_producer` (None until it
        # starts) and offers no public way to it; its own topic creation uses this client.
        producer = cast(Any, self.app.producer)._producer  # noqa: SLF001
        return None if producer is None else cast(AIOKafkaClient, producer.client)

    async def _guard_topics(self) -> None:
        try:
            await self.topic_guard.check()
        except Exception as exc:  # the next tick tries again (a raise would stop the worker)
            log.warning("broker.topic_check_failed", error=repr(exc)[:300])

    def start_metrics(self) -> int | None:
        """Serve /metrics on the configured address; returns the bound port (None if off)."""
        m = self.settings.metrics
        if m.port == 0:
            return None
        server, _thread = start_http_server(m.port, addr=m.host, registry=self.registry)
        self._metrics_server = server
        port = int(server.server_port)
        log.info("metrics.serving", url=f"http://{m.host}:{port}/metrics")
        return port

    def stop_metrics(self) -> None:
        """Stop the /metrics server."""
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None

    def worker(self, loglevel: str = "warning") -> faust.Worker:
        """A Faust worker for this app (it owns the event loop and the signal handlers)."""
        return faust.Worker(self.app, loglevel=loglevel.upper(), quiet=True, redirect_stdouts=False)

    def start_relay(self) -> StoreRelay | None:
        """Serve this process's chDB store to the other commands (`serve`, `report` …).

        Only the owner of an embedded store has one; against a ClickHouse server every
        process connects by itself. A relay that cannot start costs the other commands
        their access, not the worker its work: it is logged and the worker goes on.
        """
        cfg = self.settings.clickhouse
        if self.clickhouse is None or cfg.dsn:
            return None
        try:
            relay = start_relay(self.clickhouse, self.store_lock, cfg.chdb_path)
        except Exception as exc:  # the worker itself does not need it
            log.warning("store.relay_not_started", error=repr(exc)[:300])
            return None
        log.info("store.relay_serving", url=relay.address.url, store=str(cfg.chdb_path))
        return relay

    def run(self, loglevel: str = "warning") -> None:
        """Run the worker until SIGTERM or SIGINT; then stop cleanly."""
        self.start_metrics()
        relay = self.start_relay()
        try:
            self.worker(loglevel).execute_from_commandline()
        except SystemExit as exc:
            # Faust exits 1 when a service crashed: a supervisor must see that and restart.
            if exc.code not in (0, None):
                raise
        finally:
            self.stop_metrics()
            if relay is not None:
                relay.stop()


def build_pipeline(
    settings: Settings,
    redis: aioredis.Redis,
    clickhouse: Client | None,
    send: Sender,
    metrics: Metrics | None = None,
    key_prefix: str | None = None,
    clock: Callable[[], float] = time.time,
    rows: Callable[[Sender], RowWriter] | None = None,
    sinks: Mapping[str, TableSink] | None = None,
) -> Pipeline:
    """A pipeline on these clients: Redis state and model store, one sink per table.

    ``key_prefix`` overrides the Redis prefix (benchmarks and tests isolate runs with it).
    ``rows`` builds where the batch's ClickHouse rows go from ``send`` (the worker's:
    :class:`sinks.row_stream.TopicRows`, for its sink); by default they are inserted at once.
    ``sinks`` are where the other tables' rows go; by default ClickHouse sinks on ``clickhouse``.
    """
    prefix = key_prefix or settings.redis.key_prefix
    ttl = int(settings.models.horizon_days * 86400) + _STATE_MARGIN_S
    if sinks is None:
        if clickhouse is None:
            raise ValueError("a pipeline needs a ClickHouse client or its table sinks")
        sinks = table_sinks(settings, clickhouse)
    return Pipeline(
        settings=settings,
        state=RedisState(redis, prefix, settings.redis.dedup_ttl_s, ttl),
        store=ModelStore(redis, prefix),
        sinks=dict(sinks),
        metrics=metrics or Metrics.create(CollectorRegistry()),
        send=send,
        pii_key=settings.require_pii_key(),
        clock=clock,
        rows=rows(send) if rows is not None else None,
    )


def table_sinks(
    settings: Settings, clickhouse: Client, lock: threading.Lock | None = None
) -> dict[str, ClickHouseSink]:
    """One sink per table, on one client (chDB calls must not overlap: one lock)."""
    lock = lock or threading.Lock()
    return {
        table: ClickHouseSink(table, clickhouse, settings.clickhouse.database, lock)
        for table in COLUMNS
    }


#: Exit status of a worker whose broker lost its state; its supervisor starts a fresh one.
BROKER_LOST_EXIT = 75  # EX_TEMPFAIL


def _exit_for_restart() -> None:
    """Exit now, with no clean stop: a clean stop would acknowledge and commit the batch in
    hand, read from positions the broker no longer has (see streaming/topic_guard.py)."""
    log.critical("worker.exiting_for_restart", status=BROKER_LOST_EXIT)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(BROKER_LOST_EXIT)


def request_stop() -> None:
    """Ask the running worker to stop as if it received SIGTERM (flushes and commits)."""
    os.kill(os.getpid(), signal.SIGTERM)
