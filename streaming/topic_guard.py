"""Keeps the worker's topics on the broker, so a broker that lost them does not stall it.

A broker restarted on memory storage (the embedded Tansu), or a topic deleted by hand,
takes the worker's output topics away while its producer still believes in them. Two
things then go wrong, and the guard handles both:

- A batch for a partition that has no leader any more waits in aiokafka's accumulator:
  its metadata loop asks for all topics, which creates none, and the batch only fails
  when it expires (``KafkaSettings.produce_timeout_s``; Faust's default is 20 minutes).
  ``check`` runs every few seconds, recreates the missing topics as they were, and
  points the producer at them, so the waiting batches go out.
- Tansu acknowledges a produce to a topic it does not have (no error, offset 0) and
  keeps nothing. A producer whose metadata predates the restart would lose messages
  that way. ``refresh_producer`` runs before every batch: it refreshes the producer's
  metadata for the worker's topics, so the producer learns that a topic is gone before
  it sends, and waits for it (Tansu creates a named topic on that request).

A third problem cannot be handled in process. A broker that lost its state also lost
the consumer group's offsets, and Tansu answers a fetch beyond the end of a partition
with no records instead of OFFSET_OUT_OF_RANGE: the consumer keeps its old positions on
the new, empty topics and skips every message below them once the topics grow past.
Faust keeps its own copies of those positions (read, acked and committed offsets) with
no public way to reset them. So the guard keeps a sentinel topic that no one else
names; when a sentinel it has seen is gone, the broker lost its state, and the guard
calls ``on_broker_lost`` before any batch from the new broker is handled. The worker
exits at once (streaming/runtime.py), and its supervisor starts a fresh consumer that
reads the new topics from their start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.protocol.metadata import MetadataRequest
from prometheus_client import Counter

from streaming.producer import bootstrap_servers

log = structlog.get_logger(__name__)

#: Milliseconds one check may wait for the broker before it fails (the next check retries).
_REQUEST_TIMEOUT_MS = 10_000


async def create_topics(bootstrap: str, layout: Mapping[str, int], replication: int) -> list[str]:
    """Create the topics of ``layout`` the broker lacks, with their partitions; return them.

    Call it before the worker starts. Otherwise the first client to name a missing topic
    in a metadata request (Faust's consumer, the producer) has the broker create it with
    the broker's default partitions: ``training.examples`` then gets 4, not its one.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(bootstrap), request_timeout_ms=_REQUEST_TIMEOUT_MS
    )
    await admin.start()
    try:
        missing = {t: n for t, n in layout.items() if t not in set(await admin.list_topics())}
        if not missing:
            return []
        response = await admin.create_topics(
            [NewTopic(t, n, replication) for t, n in missing.items()]
        )
        failed = {
            topic: code
            for topic, code, *_ in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        log.info("broker.topics_created", partitions=missing, failed=failed or None)
        if failed:
            raise KafkaError(f"the broker refused to create topics: {failed}")
        return list(missing)
    finally:
        await admin.close()


class BrokerStateLost(RuntimeError):
    """The broker no longer has the sentinel topic it had: it lost every topic and offset."""


class TopicGuard:
    """Recreates the worker's missing topics and keeps the producer's view of them current.

    Parameters
    ----------
    bootstrap
        The broker URL, Faust style (``kafka://host:port``).
    layout
        Every topic the worker uses, with its configured partitions. A topic that
        disappears is recreated with the partitions it had (those configured if unseen).
    replication
        The replication factor of the topics created.
    producer_client
        Returns the client of the worker's producer (None before the producer starts).
    created
        Counts the topics created, by topic.
    sentinel
        A topic only the guard uses: gone after it was seen means the broker lost its state.
    on_broker_lost
        Called when the sentinel is gone (the worker exits there).
    """

    def __init__(
        self,
        bootstrap: str,
        layout: Mapping[str, int],
        replication: int,
        producer_client: Callable[[], AIOKafkaClient | None],
        created: Counter,
        sentinel: str,
        on_broker_lost: Callable[[], None],
    ) -> None:
        self.bootstrap = bootstrap
        self.layout = dict(layout)
        self.replication = replication
        self.producer_client = producer_client
        self.created = created
        self.sentinel = sentinel
        self.on_broker_lost = on_broker_lost
        self.sentinel_seen = False
        self.partitions = dict(layout)  # what a missing topic is created with
        self._warned: set[str] = set()
        # One check at a time: the worker's start task, its two consumers and the timer may
        # call at once, and a call that listed the topics just before another created the
        # sentinel would take the missing sentinel for a broker that lost its state.
        self._checking = asyncio.Lock()

    async def refresh_producer(self) -> None:
        """Refresh the producer's metadata for the worker's topics; call before producing.

        Raises ``KafkaConnectionError`` when the broker cannot be reached: the batch then
        waits and is tried again, instead of producing on stale metadata.
        """
        client = self.producer_client()
        if client is None:
            return
        for topic in self.layout:
            client.add_topic(topic)  # a no-op once added: requests then name these topics
        if not await client.force_metadata_update():
            raise KafkaConnectionError("cannot refresh the producer's metadata: broker away")
        self._remember(client.cluster)
        if self.sentinel_seen and not await self._sentinel_present(client):
            self._lost()

    async def _sentinel_present(self, client: AIOKafkaClient) -> bool:
        node = client.get_random_node()
        if node is None:
            raise KafkaConnectionError("no broker known to the producer")
        # Named without auto-creation: asking must not bring the sentinel back.
        request = MetadataRequest([self.sentinel], allow_auto_topic_creation=False)
        response = await client.send(node, request)
        return any(t[0] == 0 and t[1] == self.sentinel for t in response.topics)

    def _lost(self) -> None:
        log.critical("broker.state_lost", sentinel=self.sentinel)
        self.on_broker_lost()
        raise BrokerStateLost(f"the broker lost its topics (sentinel {self.sentinel} is gone)")

    async def check(self) -> list[str]:
        """Create the topics the broker lacks; return their names.

        Raises ``KafkaError`` when the broker cannot be reached or refuses a creation.
        """
        async with self._checking:
            return await self._check()

    async def _check(self) -> list[str]:
        client = self.producer_client()
        if client is not None:
            self._remember(client.cluster)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers(self.bootstrap),
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )
        await admin.start()
        try:
            present = set(await admin.list_topics())
            if self.sentinel_seen and self.sentinel not in present:
                self._lost()
            missing = [t for t in (*self.layout, self.sentinel) if t not in present]
            if missing:
                await self._create(admin, missing)
            self.sentinel_seen = True
        finally:
            await admin.close()
        if missing or (client is not None and set(self.layout) - client.cluster.topics()):
            await self.refresh_producer()
        return missing

    def _remember(self, cluster: ClusterMetadata) -> None:
        """Record the partitions of each topic the producer sees, to recreate it the same.

        A topic recreated with other partitions would break the producer's partitioner
        and the consumer's assignment until both notice; one recreated the same does not.
        """
        for topic, configured in self.layout.items():
            found = cluster.partitions_for_topic(topic)
            if not found:
                continue
            self.partitions[topic] = len(found)
            if len(found) != configured and topic not in self._warned:
                # Created by someone else first, e.g. by a broker that auto-creates topics.
                self._warned.add(topic)
                log.warning("broker.topic_partitions_differ", topic=topic,
                            partitions=len(found), configured=configured,
                            hint="the topic existed before this worker created it (a broker"
                            " that creates topics on first use); recreate it with"
                            f" {configured} partition(s), or name a new topic")  # fmt: skip

    async def _create(self, admin: AIOKafkaAdminClient, topics: list[str]) -> None:
        layout = {t: self.partitions.get(t, 1) for t in topics}
        response = await admin.create_topics(
            [NewTopic(t, n, self.replication) for t, n in layout.items()]
        )
        failed = {}
        for topic, code, *detail in response.topic_errors:
            if code == 0:
                self.created.labels(topic=topic).inc()
            elif code != TopicAlreadyExistsError.errno:  # created meanwhile by someone else
                failed[topic] = (code, detail)
        # Creating topics is what a first start does: information, not a warning.
        log.info("broker.topics_created", partitions=layout, failed=failed or None)
        if failed:
            raise KafkaError(f"the broker refused to create topics: {failed}")
