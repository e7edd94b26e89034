"""Shared parts of the reliability tests: an in-process pipeline on the real services.

``live_pipeline`` wires :func:`streaming.runtime.build_pipeline` to the shared Redis
(a per-test key prefix), a chDB directory of the test's own and a real aiokafka
producer on the shared broker, with topics named after the test's ``run_id``.
It runs in its own event loop (``asyncio.Runner``), so that synchronous
hypothesis tests can drive it example after example.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from config.settings import Settings, TopicNames
from sinks.clickhouse import connect, migrate
from streaming.pipeline import Message, Pipeline
from streaming.producer import bootstrap_servers
from streaming.runtime import build_pipeline

PII_KEY = "reliability-test-key-0123456789"


def run_topics(run_id: str) -> TopicNames:
    """The default topic names, prefixed with ``run_id``."""
    return TopicNames(**{k: f"{run_id}.{v}" for k, v in TopicNames().model_dump().items()})


@dataclass
class LivePipeline:
    """A pipeline on real Redis, chDB and broker, driven from synchronous code."""

    pipeline: Pipeline
    runner: asyncio.Runner
    clickhouse: Client
    redis: aioredis.Redis
    producer: AIOKafkaProducer
    settings: Settings
    prefix: str
    broker_url: str
    _offset: int = 0

    def handle(self, kind: str, values: list[bytes | None]) -> None:
        """One batch of raw messages of ``kind`` through ``handle_raw``."""
        messages = []
        for value in values:
            messages.append(Message(0, self._offset, None, value, time.time()))
            self._offset += 1
        self.runner.run(self.pipeline.handle_raw(kind, messages))

    def run(self, coro: Any) -> Any:
        """Run a coroutine in the pipeline's event loop."""
        return self.runner.run(coro)

    def read_topic(self, topic: str, expect: int, timeout: float = 20.0) -> list[Any]:
        """(key, decoded value or None) of every message on ``topic``."""
        return self.runner.run(read_all(self.broker_url, topic, expect, timeout))

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of a ClickHouse query on the pipeline's database."""
        db = self.settings.clickhouse.database
        return list(self.clickhouse.query(sql.replace("{db}", db), parameters=params).result_rows)


async def read_all(
    broker_url: str, topic: str, expect: int, timeout: float = 20.0
) -> list[tuple[bytes | None, Any]]:
    """Every message on ``topic`` as (key, value) with values decoded (None for a tombstone)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(broker_url), auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    out: list[tuple[bytes | None, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out.extend(
                    (r.key, orjson.loads(r.value) if r.value is not None else None) for r in records
                )
            if len(out) >= expect and not batch:
                break
    finally:
        await consumer.stop()
    return out


def pipeline_settings(run_id: str, broker_url: str, redis_url: str, chdb: Path) -> Settings:
    """Settings for a test pipeline: its own topics, key prefix and chDB folder."""
    return Settings(
        kafka={"bootstrap": broker_url, "topics": run_topics(run_id), "partitions": 1},
        redis={"url": redis_url, "key_prefix": f"rel-{run_id}"},
        clickhouse={"chdb_path": chdb},
        pii_hash_key=PII_KEY,
    )


@pytest.fixture
def live_pipeline(
    broker_url: str, redis_url: str, run_id: str, tmp_path: Path
) -> Iterator[LivePipeline]:
    """A pipeline on the shared broker and Redis and a chDB of this test's own."""
    settings = pipeline_settings(run_id, broker_url, redis_url, tmp_path / "chdb")
    runner = asyncio.Runner()
    ch = connect(settings.clickhouse)
    migrate(ch, settings.clickhouse.database)

    async def start() -> tuple[aioredis.Redis, AIOKafkaProducer]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(broker_url), linger_ms=5, enable_idempotence=False
        )
        await producer.start()
        return aioredis.from_url(redis_url), producer

    redis, producer = runner.run(start())

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        return await producer.send(topic, value, key=key)

    pipeline = build_pipeline(settings, redis, ch, send)
    live = LivePipeline(
        pipeline, runner, ch, redis, producer, settings, f"rel-{run_id}", broker_url
    )
    try:
        yield live
    finally:

        async def stop() -> None:
            await producer.stop()
            await redis.aclose()

        runner.run(stop())
        runner.close()
        ch.close()  # chDB serves one data directory per process at a time
