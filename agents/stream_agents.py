"""Thin Faust agents and timers: the learner, model publishing and reloading, the sweep.

Which of them a process registers depends on its roles (streaming/roles.py).

The learner's offsets are acknowledged only after the loop body for its batch returns
(``take_events``), so everything it writes is at-least-once. The raw topics are read by
:mod:`agents.stream`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterable, Awaitable, Callable
from functools import partial
from typing import Any, cast

import faust
import structlog
from faust.types import EventT

from config.settings import Settings
from streaming.app import Topics
from streaming.pipeline import Message, Pipeline

log = structlog.get_logger(__name__)


def _messages(events: list[EventT[bytes]]) -> list[Message]:
    return [
        Message(
            partition=e.message.partition,
            offset=e.message.offset,
            key=e.message.key,
            value=e.message.value,
            timestamp=e.message.timestamp,
        )
        for e in events
    ]


#: Longest wait between two attempts at a batch that keeps failing.
_MAX_RETRY_WAIT_S = 30.0


async def _until_done(what: str, handle: Callable[[], Awaitable[None]]) -> None:
    """Handle one batch until it succeeds, waiting longer after each failure.

    No exception may leave an agent's loop: Faust's ``take_events`` acknowledges a
    batch whenever its loop is left, by an exception too, and the offsets would then
    be committed without the batch's effects (Redis or ClickHouse down lost events).
    Retrying the same batch is safe (replays are idempotent) and holds the consumer.
    """
    for attempt in itertools.count(1):
        try:
            await handle()
            return
        except Exception as exc:  # any failure: the same batch again, after a wait
            wait = min(0.5 * 2 ** min(attempt - 1, 10), _MAX_RETRY_WAIT_S)
            log.error("batch.failed", agent=what, attempt=attempt, retry_in_s=wait,
                      error=repr(exc)[:500])  # fmt: skip
            await asyncio.sleep(wait)


def _survives(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A periodic job whose failure is logged, not raised.

    An exception out of a Faust timer crashes the whole worker; a timer that meets
    Redis down (sweep, reload, publish) simply tries again at its next tick.
    """

    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except Exception as exc:  # the next tick retries
            log.error("timer.failed", timer=job.__name__, error=repr(exc)[:500])

    return run


def _gated(
    gate: Callable[[], Awaitable[None]] | None, handle: Callable[[], Awaitable[object]]
) -> Callable[[], Awaitable[None]]:
    """``handle`` preceded by ``gate`` (a failing gate fails the attempt, which is retried)."""

    async def run() -> None:
        if gate is not None:
            await gate()
        await handle()

    return run


def register_learner(
    app: faust.App, topics: Topics, settings: Settings, pipeline: Callable[[], Pipeline]
) -> None:
    """The learner's part: the agent on ``training.examples``, model publishing, its lag.

    ``training.examples`` has one partition: in a group of several learners, one learns
    and the others wait as hot standbys.
    """
    # The learner is not on the latency path: it waits longer for fuller batches.
    size, within = settings.kafka.batch_size, max(settings.kafka.batch_within_s, 0.2)
    models = settings.models

    @app.agent(topics.training, name="leadstream.learner")
    async def learner(stream: AsyncIterable[bytes]) -> None:
        async for events in stream.take_events(size, within=within):  # type: ignore[attr-defined]  # faust's StreamT protocol lacks take_events; Stream has it
            batch = _messages(events)
            await _until_done("learner", partial(pipeline().learn, batch))

    @app.timer(models.publish_every_s)
    @_survives
    async def publish_model() -> None:
        await pipeline().publish()

    async def publish_at_shutdown(_sender: Any, *_args: Any, signal: Any, **_kw: Any) -> None:
        # The consumer has stopped: what was learned since the last timer is saved too.
        version = await pipeline().publish()
        if version is not None:
            log.info("model.published_at_shutdown", version=version)

    # mode's Signal.connect annotation accepts no async def as written; the receiver is fine.
    app.on_before_shutdown.connect(cast(Any, publish_at_shutdown))

    @app.timer(5.0)
    @_survives
    async def export_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            position = await consumer.position(tp)
            if position is None:
                continue
            lag = max(0, consumer.highwater(tp) - position)
            pipeline().metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                lag
            )


def register_stream_jobs(
    app: faust.App,
    settings: Settings,
    pipeline: Callable[[], Pipeline],
    before_batch: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """The stream's periodic jobs: model reload, label sweep, anomaly gauges.

    The raw topics themselves are not Faust agents: :class:`agents.stream.BatchStream`
    consumes them in batches. ``before_batch`` runs before each label sweep, a step that
    produces (the worker refreshes its producer's metadata there, see
    streaming/topic_guard.py). Every stream worker sweeps: the expired leads are the same
    for all, and the learner learns each lead once (its first-learning mark in Redis).
    """
    models = settings.models

    @app.timer(models.reload_every_s)
    @_survives
    async def reload_model() -> None:
        if await pipeline().refresh_model():
            log.info("model.loaded", version=pipeline().model.version)

    @app.timer(models.sweep_every_s)
    @_survives
    async def sweep_labels() -> None:
        await _gated(before_batch, pipeline().sweep)()

    @app.timer(5.0)
    @_survives
    async def export_anomalies() -> None:
        # Any worker may close a window; every worker exports the anomalous series it finds
        # in Redis, so an alert does not depend on which one is scraped.
        await pipeline().monitor.sync_gauges()
