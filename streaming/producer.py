"""Send generated or recorded events to the raw topics, at a chosen rate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from config.settings import TopicNames
from streaming.codec import dumps


def bootstrap_servers(url: str) -> str:
    """The host:port list aiokafka wants, from a Faust-style broker URL.

    >>> bootstrap_servers("kafka://127.0.0.1:19092;kafka://127.0.0.2:19092")
    '127.0.0.1:19092,127.0.0.2:19092'
    """
    parts = [p.strip().removeprefix("kafka://") for p in url.replace(",", ";").split(";")]
    return ",".join(p for p in parts if p)


def topic_for(kind: str, topics: TopicNames) -> str:
    """The raw topic for an event kind."""
    for name, k in topics.raw().items():
        if k == kind:
            return name
    raise ValueError(f"unknown event kind {kind!r}")


async def produce(
    events: Iterable[Any],
    bootstrap: str,
    topics: TopicNames,
    rate: float | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Send events (objects with ``kind``, ``key`` and ``value``) and wait until all are acknowledged.

    Parameters
    ----------
    rate
        Events per second; None sends as fast as the broker takes them.
    on_sent
        Called with the number of events sent since the previous call (for progress bars).

    Returns the number of events sent per kind.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(bootstrap),
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks=1,
        enable_idempotence=False,  # Tansu has no idempotent producer; sinks are idempotent
    )
    await producer.start()
    sent: Counter[str] = Counter()
    names = {
        kind: topic_for(kind, topics) for kind in ("lead", "touchpoint", "conversion", "spend")
    }
    started = time.perf_counter()
    futures: list[asyncio.Future[Any]] = []
    since_report = 0
    try:
        for n, event in enumerate(events, start=1):
            value = event.value
            if isinstance(value, dict):
                value = dumps(value)
            key = event.key.encode() if isinstance(event.key, str) else event.key
            futures.append(await producer.send(names[event.kind], value, key=key))
            sent[event.kind] += 1
            since_report += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
            if rate:
                ahead = n / rate - (time.perf_counter() - started)
                if ahead > 0.005:
                    await asyncio.sleep(ahead)
            if on_sent is not None and since_report >= 500:
                on_sent(since_report)
                since_report = 0
        await asyncio.gather(*futures)
        if on_sent is not None and since_report:
            on_sent(since_report)
    finally:
        await producer.stop()
    return sent
