"""The ``rig`` fixture: pipelines on real Redis and chDB, configurable per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from config.settings import Settings
from sinks.clickhouse import connect, migrate
from tests.learning._rig import Rig


@pytest.fixture
async def rig(
    redis_url: str, run_id: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Rig]]:
    opened: list[tuple[Any, Any]] = []
    counter = iter(range(100))

    def make(**models: Any) -> Rig:
        settings = Settings(
            redis={"url": redis_url, "key_prefix": f"lrn-{run_id}-{next(counter)}"},
            clickhouse={"chdb_path": tmp_path / "chdb"},
            # These tests are about the horizon label join (the default is es_dfm).
            models={"horizon_days": 30, "label_policy": "horizon", **models},
            kafka={"partitions": 1},
            pii_hash_key="learning-test-key-0123456789",
        )
        if opened:
            redis, ch = opened[0]
        else:
            redis, ch = aioredis.from_url(redis_url), connect(settings.clickhouse)
            migrate(ch, settings.clickhouse.database)
            opened.append((redis, ch))
        return Rig(settings, redis, ch)

    yield make
    for redis, ch in opened:
        await redis.aclose()
        ch.close()  # chDB serves one data directory per process at a time
