"""Helpers of the learning tests: a pipeline on real Redis and chDB with captured sends."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from config.settings import Settings
from sinks.metrics import Metrics
from streaming.pipeline import Message, Pipeline
from streaming.runtime import build_pipeline


class Captured:
    """A sender that records messages and delivers them at once."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes | None, dict[str, Any]]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.messages.append((topic, key, orjson.loads(value)))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [v for t, _, v in self.messages if t == topic]


class Rig:
    """Settings, clients and a factory of pipelines sharing one Redis prefix and chDB."""

    def __init__(self, settings: Settings, redis: Any, ch: Any) -> None:
        self.settings = settings
        self.redis = redis
        self.ch = ch
        self.sent = Captured()
        self.registry = CollectorRegistry()

    def pipeline(self) -> Pipeline:
        """A new pipeline (a restarted worker), with its own metrics."""
        self.registry = CollectorRegistry()
        return build_pipeline(
            self.settings, self.redis, self.ch, self.sent, Metrics.create(self.registry)
        )

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.registry.get_sample_value(name, labels or {})


_offsets = iter(range(10**9))


def as_messages(values: list[dict[str, Any]]) -> list[Message]:
    return [Message(0, next(_offsets), None, orjson.dumps(v), 0.0) for v in values]
