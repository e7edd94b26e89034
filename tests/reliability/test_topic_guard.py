"""The topic guard on the real broker: it recreates lost topics as they were, keeps the
producer from sending on stale metadata, and notices when the broker lost its state.

Topics are deleted behind the producer's back with the admin client, which is what a
broker restart on memory storage does to every topic at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from sinks.metrics import Metrics
from streaming.producer import bootstrap_servers
from streaming.topic_guard import BrokerStateLost, TopicGuard

pytestmark = pytest.mark.integration


class Parts:
    def __init__(self, bootstrap: str, run_id: str) -> None:
        self.bootstrap = bootstrap
        self.a, self.b = f"{run_id}.guard-a", f"{run_id}.guard-b"
        self.metrics = Metrics.create(CollectorRegistry())
        self.lost: list[bool] = []
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(bootstrap))
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(bootstrap))
        self.guard = TopicGuard(
            bootstrap, {self.a: 3, self.b: 1}, 1, lambda: self.producer.client,
            self.metrics.topics_created, f"{run_id}.guard-epoch", lambda: self.lost.append(True),
        )  # fmt: skip

    def created(self, topic: str) -> float:
        return sum(
            s.value for m in self.metrics.topics_created.collect() for s in m.samples
            if s.name.endswith("_total") and s.labels["topic"] == topic
        )  # fmt: skip

    async def partitions(self, topic: str) -> int:
        (described,) = await self.admin.describe_topics([topic])
        return len(described["partitions"])

    async def read(self, topic: str) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap_servers(self.bootstrap),
            auto_offset_reset="earliest", group_id=None,
        )  # fmt: skip
        await consumer.start()
        out: list[bytes] = []
        try:
            for _ in range(4):
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    out.extend(r.value for r in records if r.value is not None)
        finally:
            await consumer.stop()
        return out


@pytest.fixture
async def parts(broker_url: str, run_id: str) -> AsyncIterator[Parts]:
    p = Parts(broker_url, run_id)
    await p.producer.start()
    await p.admin.start()
    yield p
    await p.producer.stop()
    await p.admin.close()


async def test_missing_topics_are_recreated_as_they_were(parts: Parts) -> None:
    """The first check creates every topic and the sentinel; a topic deleted later comes
    back with the partitions it had, and the producer sees it again."""
    assert set(await parts.guard.check()) == {parts.a, parts.b, parts.guard.sentinel}
    assert await parts.guard.check() == []  # nothing missing: nothing done
    assert (await parts.partitions(parts.a), await parts.partitions(parts.b)) == (3, 1)

    await parts.admin.delete_topics([parts.a])
    assert await parts.guard.check() == [parts.a]
    assert await parts.partitions(parts.a) == 3
    assert parts.created(parts.a) == 2
    assert parts.producer.client.cluster.partitions_for_topic(parts.a) == {0, 1, 2}
    await (await parts.producer.send(parts.a, b"after", partition=2))
    assert await parts.read(parts.a) == [b"after"]
    assert parts.lost == []


async def test_refresh_before_producing_keeps_messages_off_a_missing_topic(parts: Parts) -> None:
    """Tansu acknowledges a produce to a topic it does not have and keeps nothing (the
    control below shows it). ``refresh_producer`` names the worker's topics to the broker
    first, so the producer never sends on metadata older than the batch: Tansu creates a
    named topic then, and a Kafka that does not makes the send wait for the guard."""
    await parts.guard.check()
    await parts.admin.delete_topics([parts.b])
    await (await parts.producer.send(parts.b, b"dropped", partition=0))  # stale metadata
    await parts.guard.check()  # recreates b
    assert await parts.read(parts.b) == []  # acknowledged, yet not stored

    await parts.admin.delete_topics([parts.b])
    await parts.guard.refresh_producer()
    await asyncio.wait_for(await parts.producer.send(parts.b, b"kept"), 30)
    assert await parts.read(parts.b) == [b"kept"]


async def test_a_lost_sentinel_means_the_broker_lost_its_state(parts: Parts) -> None:
    """A sentinel never seen proves nothing (a new broker); one seen and then gone means
    the broker lost every topic and offset: the worker is told before it produces."""
    await parts.guard.refresh_producer()  # not seen yet: no alarm
    assert parts.lost == []
    await parts.guard.check()
    await parts.guard.refresh_producer()  # still there
    assert parts.lost == []

    await parts.admin.delete_topics([parts.guard.sentinel])
    with pytest.raises(BrokerStateLost):
        await parts.guard.refresh_producer()
    with pytest.raises(BrokerStateLost):
        await parts.guard.check()  # the periodic check notices it too, and does not hide it
    assert parts.lost == [True, True]
