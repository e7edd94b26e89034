"""The Faust app: settings in, an app with its topics out. Agents are registered by `agents`."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from config.settings import Settings


@dataclass(frozen=True)
class Topics:
    """The app's topic objects, by role."""

    raw: dict[str, TopicT]  # kind -> topic
    scored: TopicT
    training: TopicT
    deadletter: TopicT


def create_app(settings: Settings, *, web_port: int | None = None) -> faust.App:
    """A Faust app configured for at-least-once processing on any Kafka-protocol broker.

    State that matters lives in Redis, so tables are in memory; consumers start
    from committed offsets and otherwise from the earliest (a broker's "latest"
    offset is not trusted, see INFRA.md).
    """
    k = settings.kafka
    return faust.App(
        k.app_id,
        broker=k.bootstrap,
        store="memory://",
        datadir=str(k.data_dir),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=k.heartbeat_interval_s,
        broker_commit_interval=k.commit_interval_s,
        stream_buffer_maxsize=max(4 * k.batch_size, 4096),
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        # Also how long a batch waits for a partition leader before it fails (not 20 minutes).
        producer_request_timeout=k.produce_timeout_s,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        autodiscover=False,
        table_cleanup_interval=3600.0,
    )


#: Learning is the one serial step: one partition, one learner.
TRAINING_PARTITIONS = 1


def topic_layout(settings: Settings) -> dict[str, int]:
    """Every topic the worker reads or writes, with the partitions it is created with."""
    names = settings.kafka.topics
    layout = dict.fromkeys(names.model_dump().values(), settings.kafka.partitions)
    layout[names.training] = TRAINING_PARTITIONS
    return layout


def declare_topics(app: faust.App, settings: Settings) -> Topics:
    """Topic objects carrying raw bytes: agents decode with orjson themselves."""
    names = settings.kafka.topics

    def topic(name: str, partitions: int | None = None) -> TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions or settings.kafka.partitions,
        )

    return Topics(
        raw={kind: topic(name) for name, kind in names.raw().items()},
        scored=topic(names.scored),
        training=topic(names.training, partitions=TRAINING_PARTITIONS),
        deadletter=topic(names.deadletter),
    )
