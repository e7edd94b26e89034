"""What the stream does with one batch of a raw topic: ingest, dedup, score, label, rows.

Delivery is at-least-once end to end. For every batch, in this order:
1. every valid event's ClickHouse row is handed to the row writer (in the worker:
   produced to ``events.valid`` for the sink; idempotent: replays collapse);
2. effects that are not idempotent (scores produced, labels, counters) run only
   for event ids not yet marked as processed in Redis;
3. produced messages (rows included) are awaited;
4. the batch's event ids are marked processed;
and only then does the consumer (agents/stream.py) commit the offsets.
A crash anywhere replays the batch: ClickHouse collapses it, Redis counters
were changed atomically with their dedup key, and at worst a score is
published twice with the same ``event_id``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from config.settings import STAGES, Settings
from online_models.bundle import (
    ModelBundle,
    ModelStore,
    from_fake_negatives,
    value_band,
)
from online_models.delayed_feedback import PROVISIONAL
from online_models.features import lead_features
from online_models.importance import scored_many
from sinks.clickhouse import DirectRows
from sinks.metrics import Metrics
from sinks.redis_state import RedisState
from sinks.rows import COLUMNS, TABLE_FOR_KIND, Row, TableSink, event_row, mapping_row
from streaming.anomalies import AnomalyMonitor
from streaming.codec import dumps
from streaming.ingest import Accepted, Ingestor, Rejected
from streaming.learner import LearnerRole

log = structlog.get_logger(__name__)

_STAGE_RANK = {stage: i for i, stage in enumerate(STAGES)}
#: The band of a lead scored before the model learned anything (``cold_start``).
COLD_BAND = "unscored"
#: Where a scored_leads row holds the reasons (JSON text).
_REASONS_AT = COLUMNS["scored_leads"].index("reasons")


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # broker append time, epoch seconds


class Sender(Protocol):
    """Enqueues one message; the returned awaitable resolves when the broker has it."""

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]: ...


class RowWriter(Protocol):
    """Where a batch's ClickHouse rows go: straight in, or to the sink through Kafka.

    The rows are durable once :meth:`write` has returned and the awaitables it returns
    have resolved (the pipeline awaits them with the batch's messages).
    """

    async def write(self, table: str, rows: Sequence[Row]) -> list[Awaitable[Any]]: ...


class Pipeline(LearnerRole):
    """Batch handlers shared by all agents of one worker.

    Parameters
    ----------
    settings
        The worker's settings.
    state
        Redis state (dedup, engagement, snapshots).
    store
        Where model versions are published and loaded.
    sinks
        One ClickHouse sink per table name.
    metrics
        The worker's metrics.
    send
        Produces a message to Kafka.
    pii_key
        HMAC key for personal data.
    clock
        Wall clock (epoch seconds); injectable for tests.
    rows
        Where rows of the event tables, scored leads and rejections go; by default
        straight into ``sinks`` (:class:`sinks.clickhouse.DirectRows`).
    """

    def __init__(
        self,
        settings: Settings,
        state: RedisState,
        store: ModelStore,
        sinks: dict[str, TableSink],
        metrics: Metrics,
        send: Sender,
        pii_key: bytes,
        clock: Callable[[], float] = time.time,
        rows: RowWriter | None = None,
    ) -> None:
        self.settings = settings
        self.rows = rows or DirectRows(sinks, metrics)
        self.state = state
        self.store = store
        self.sinks = sinks
        self.metrics = metrics
        self.send = send
        self.clock = clock
        topics = settings.kafka.topics
        self.topics = topics
        self.ingestors = {
            kind: Ingestor(name, kind, settings.pii_fields, pii_key, settings.kafka.max_event_bytes)
            for name, kind in topics.raw().items()
        }
        self.model = self.new_bundle()
        self.learning: ModelBundle | None = None
        self._learned_since_publish = 0
        self._promotions: list[dict[str, Any]] = []  # applied, not yet in ClickHouse
        self._horizon_s = settings.models.horizon_days * 86400.0
        self._fake_negatives = settings.models.label_policy == "fake_negative"
        # Delayed feedback (online_models/delayed_feedback.py): the learner sees each lead
        # when it is scored; es_dfm also when its window passes without a conversion.
        self._provisional = settings.models.label_policy in PROVISIONAL
        self._window_s = settings.models.window_days * 86400.0
        self.monitor = AnomalyMonitor.for_worker(
            settings, state.client, state.prefix, metrics, send, sinks.get("anomalies"), clock
        )

    # -- raw events -----------------------------------------------------------------

    async def handle_raw(self, kind: str, messages: Sequence[Message]) -> None:
        """Process one batch from the raw topic of ``kind``."""
        ingestor = self.ingestors[kind]
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        accepted: dict[str, tuple[Accepted, Message]] = {}
        pending: list[Awaitable[Any]] = []
        rejected_rows: list[Row] = []
        for msg in messages:
            result = ingestor.ingest(msg.value, now, msg.partition, msg.offset)
            if isinstance(result, Rejected):
                pending.append(await self._dead_letter(result, now, rejected_rows))
            elif result.event_id in accepted:
                self.metrics.events_duplicate.labels(topic=ingestor.topic).inc()
            else:
                accepted[result.event_id] = (result, msg)
        events = list(accepted.values())
        table = TABLE_FOR_KIND[kind]
        pending += await self.rows.write(table, [event_row(table, a.event, now) for a, _ in events])
        pending += await self.rows.write("rejected_events", rejected_rows)
        fresh = await self._fresh(kind, ingestor.topic, events)
        for event_type, count in Counter(a.event["event_type"] for a, _ in fresh).items():
            self.metrics.events_in.labels(topic=ingestor.topic, event_type=event_type).inc(count)
        latest: dict[int, float] = {}
        for a, msg in fresh:
            ts = a.occurred_at.timestamp()
            latest[msg.partition] = max(ts, latest.get(msg.partition, 0.0))
        for partition, ts in latest.items():
            await self.state.advance_watermark(f"{kind}:{partition}", ts)
        labels: list[tuple[str, Awaitable[Any]]] = []
        scores: list[float] | None = None
        if kind == "lead":
            sends, snapshots = await self._score(fresh, now)
            scores = [snapshot["score"] for _, _, snapshot in snapshots]
            pending.extend(sends)
            labels = await self._label_parked(snapshots, now)
        elif kind == "conversion":
            labels = await self._label_conversions([a for a, _ in fresh], now)
            pending.extend(await self._revenue_examples([a for a, _ in fresh]))
        await self.monitor.observe(kind, [a for a, _ in fresh], len(rejected_rows), scores)
        await asyncio.gather(*pending, *(sent for _, sent in labels))
        if kind == "lead":
            # Event -> scored: from the broker's time of the lead event to the moment its
            # scored record is on the broker (the batch's messages are acknowledged now).
            published = self.clock()
            for _, msg in fresh:
                if msg.timestamp:
                    self.metrics.scoring_latency.observe(max(0.0, published - msg.timestamp))
        # Only now that the examples are on the broker are the labels settled.
        labelled = [lead_id for lead_id, _ in labels]
        await self.state.settle(labelled)
        if kind == "lead":
            await self.state.unpark(labelled)
        if kind != "touchpoint":  # touchpoints were marked atomically with their counter
            await self.state.mark([a.event_id for a, _ in fresh])

    async def _dead_letter(
        self, rejected: Rejected, now: datetime, rows: list[Row]
    ) -> Awaitable[Any]:
        self.metrics.events_rejected.labels(topic=rejected.source_topic, reason=rejected.code).inc()
        envelope = rejected.envelope(now)
        rows.append(
            mapping_row(
                "rejected_events",
                {
                    **envelope,
                    "source_partition": rejected.partition,
                    "source_offset": rejected.offset,
                },
            )
        )
        log.info(
            "event.rejected", topic=rejected.source_topic, partition=rejected.partition,
            offset=rejected.offset, reason=rejected.reason,
        )  # fmt: skip
        return await self.send(self.topics.deadletter, None, dumps(envelope))

    async def _fresh(
        self, kind: str, topic: str, events: list[tuple[Accepted, Message]]
    ) -> list[tuple[Accepted, Message]]:
        """The events whose non-idempotent effects have not happened yet."""
        if kind == "touchpoint":
            touches = [(a.event_id, a.key, a.event["event_type"]) for a, _ in events]
            new = await self.state.count_touchpoints(touches)
        else:
            new = [not s for s in await self.state.seen([a.event_id for a, _ in events])]
        fresh = [e for e, is_new in zip(events, new, strict=True) if is_new]
        dropped = len(events) - len(fresh)
        if dropped:
            self.metrics.events_duplicate.labels(topic=topic).inc(dropped)
        return fresh

    # -- scoring --------------------------------------------------------------------

    async def _score(
        self, fresh: list[tuple[Accepted, Message]], now: datetime
    ) -> tuple[list[Awaitable[Any]], list[tuple[str, float, dict[str, Any]]]]:
        """Score, publish and snapshot fresh leads; returns the sends and the snapshots."""
        if not fresh:
            return [], []
        cfg = self.settings.models
        model = self.model
        mean_revenue = model.expected_revenue()
        engagement = await self.state.engagement([a.key for a, _ in fresh])
        sends: list[Awaitable[Any]] = []
        rows: list[Row] = []
        snapshots: list[tuple[str, float, dict[str, Any]]] = []
        xs = [lead_features(a.event, eng) for (a, _), eng in zip(fresh, engagement, strict=True)]
        # The whole batch scored and explained at once. With explanations: reasons +
        # intercept + unlisted_contribution add up to the logit; the reasons come encoded
        # once, for the message and the row alike.
        scored = scored_many(
            model.scorer, xs, [a.event for a, _ in fresh], cfg.top_reasons, cfg.explain
        )
        # Before the model has learned anything a score is only the prior: the record says
        # so, and its band does not pretend to rank the lead.
        cold = model.scorer.n_learned == 0
        currency = self.settings.reports.currency
        for (a, _), x, (score, explained, reasons) in zip(fresh, xs, scored, strict=True):
            lead = a.event
            revenue = model.expected_revenue(x)  # if won; the mean until enough deals
            if self._fake_negatives:
                score = from_fake_negatives(score)
            record = {
                "event_id": a.event_id,
                "lead_id": a.key,
                "score": round(score, 6),
                "band": COLD_BAND if cold else value_band(
                    score, revenue, mean_revenue, cfg.value_cap, cfg.band_a, cfg.band_b,
                    cfg.band_c),
                "cold_start": cold,
                "expected_value": round(score * revenue, 2),
                "currency": currency,
                **explained,
                "model_version": model.version,
                "scored_at": now,
                "occurred_at": a.occurred_at,
                "channel": lead["channel"],
                "campaign_id": lead.get("campaign_id") or "",
            }
            body = dumps(record)
            sends.append(await self.send(self.topics.scored, a.key.encode(), body))
            row = mapping_row("scored_leads", record)
            row[_REASONS_AT] = reasons
            rows.append(row)
            snapshots.append(
                (a.key, a.occurred_at.timestamp(), {
                    "features": x, "score": score, "model_version": model.version,
                    "scored_at": now.isoformat(), "created_at": a.occurred_at.timestamp(),
                })
            )  # fmt: skip
            self.metrics.lead_score.observe(score)
        # Snapshots before the score is visible: a conversion can then always find them.
        await self.state.save_snapshots(snapshots)
        if self._provisional:  # every scored lead reaches the learner now (delayed feedback)
            sends += [
                await self._emit_example(lead_id, snapshot, 0, now, None, "provisional")
                for lead_id, _, snapshot in snapshots
            ]
        sends += await self.rows.write("scored_leads", rows)
        self.metrics.leads_scored.inc(len(rows))
        return sends, snapshots

    # -- labels ---------------------------------------------------------------------

    async def _label_conversions(
        self, conversions: list[Accepted], now: datetime
    ) -> list[tuple[str, Awaitable[Any]]]:
        target = _STAGE_RANK[self.settings.models.target_stage]
        decisive: dict[str, tuple[int, Accepted]] = {}
        for c in conversions:
            stage = c.event["stage"]
            if stage == "lost":
                decisive.setdefault(c.key, (0, c))
            elif _STAGE_RANK[stage] >= target:
                decisive[c.key] = (1, c)  # a positive wins over a loss in the same batch
        if not decisive:
            return []
        lead_ids = list(decisive)
        snapshots = await self.state.pending_snapshots(lead_ids)
        unmatched = [lid for lid, s in zip(lead_ids, snapshots, strict=True) if s is None]
        scored = dict(zip(unmatched, await self.state.was_scored(unmatched), strict=True))
        sends: list[tuple[str, Awaitable[Any]]] = []
        early: list[tuple[str, dict[str, Any]]] = []
        for lead_id, snapshot in zip(lead_ids, snapshots, strict=True):
            label, conv = decisive[lead_id]
            outcome = {
                "label": label,
                "occurred_at": conv.occurred_at.timestamp(),
                "revenue": _float(conv.event.get("revenue")),
            }
            if snapshot is None:
                if scored[lead_id]:
                    self.metrics.labels_unmatched.labels(reason="already_labelled").inc()
                else:  # the lead's own event has not been processed yet
                    self.metrics.labels_unmatched.labels(reason="parked_until_lead").inc()
                    early.append((lead_id, outcome))
                continue
            sent = await self._example_for(lead_id, snapshot, outcome, now)
            if sent is not None:
                sends.append((lead_id, sent))
        await self.state.park_outcomes(early)
        return sends

    async def _revenue_examples(self, conversions: list[Accepted]) -> list[Awaitable[Any]]:
        """Every won deal with revenue teaches the expected revenue, whatever its label's fate.

        The conversion label is usually settled earlier (at the target stage), so
        revenue travels as an example of its own kind; the learner counts it once per lead.
        """
        won = [c for c in conversions if c.event["stage"] == "won" and c.event.get("revenue")
               is not None]  # fmt: skip
        # The features the lead was labelled positive with (kept when its label was
        # emitted, earlier or in this batch); None if the won overtook the label.
        kept = await self.state.kept_features([c.key for c in won])
        sends = []
        for c, features in zip(won, kept, strict=True):
            body = {"kind": "revenue", "lead_id": c.key, "revenue": float(c.event["revenue"]),
                    "features": features}  # fmt: skip
            sends.append(await self.send(self.topics.training, c.key.encode(), dumps(body)))
        return sends

    async def _label_parked(
        self, snapshots: list[tuple[str, float, dict[str, Any]]], now: datetime
    ) -> list[tuple[str, Awaitable[Any]]]:
        """Label freshly scored leads whose outcome arrived before them."""
        parked = await self.state.parked_outcomes([lead_id for lead_id, _, _ in snapshots])
        sends = []
        for (lead_id, _, snapshot), outcome in zip(snapshots, parked, strict=True):
            if outcome is not None:
                sent = await self._example_for(lead_id, snapshot, outcome, now)
                if sent is not None:
                    sends.append((lead_id, sent))
        return sends

    async def _example_for(
        self, lead_id: str, snapshot: dict[str, Any], outcome: dict[str, Any], now: datetime
    ) -> Awaitable[Any] | None:
        if outcome["occurred_at"] - snapshot["created_at"] > self._horizon_s:
            self.metrics.labels_unmatched.labels(reason="after_horizon").inc()
            return None  # the sweep labels it negative
        if outcome["label"]:  # the revenue model learns the deal from these features
            await self.state.keep_features({lead_id: snapshot["features"]})
        return await self._emit_example(
            lead_id, snapshot, outcome["label"], now, outcome["revenue"],
            converted_at=outcome["occurred_at"] if outcome["label"] else None,
        )  # fmt: skip

    async def _emit_example(
        self,
        lead_id: str,
        snapshot: dict[str, Any],
        label: int,
        now: datetime,
        revenue: float | None,
        kind: str | None = None,
        converted_at: float | None = None,
    ) -> Awaitable[Any]:
        self.metrics.training_examples.labels(label=kind or str(label)).inc()
        # Event times (epoch seconds) for the delayed-feedback strategies' weights; the
        # horizon policy's examples stay as they were.
        times = (
            {"created_at": snapshot.get("created_at"), "converted_at": converted_at}
            if self._provisional else {}
        )  # fmt: skip
        example = {
            **times,
            **({"kind": kind} if kind else {}),
            "lead_id": lead_id,
            "label": label,
            "features": snapshot["features"],
            "score": snapshot["score"],
            "model_version": snapshot["model_version"],
            "scored_at": snapshot["scored_at"],
            "labelled_at": now,
            "revenue": revenue,
        }
        return await self.send(self.topics.training, lead_id.encode(), dumps(example))

    async def sweep(self) -> int:
        """Label negative every lead that aged past the horizon without converting.

        "Past the horizon" is measured on the conversion stream's own event time,
        the slowest of its partitions: only once conversions up to a lead's
        creation plus the horizon have been processed is the absence of one a fact.
        """
        watermark = min(
            [await self.state.advance_watermark(f"conversion:{p}", 0)
             for p in range(self.settings.kafka.partitions)]
        )  # fmt: skip
        if watermark <= 0:
            return 0
        if self.settings.models.label_policy == "es_dfm":
            await self._sweep_windows(watermark)
        expired = await self.state.expired(watermark - self._horizon_s)
        if not expired:
            return 0
        snapshots = await self.state.pending_snapshots(expired)
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        sends = [
            await self._emit_example(lead_id, snap, 0, now, None)
            for lead_id, snap in zip(expired, snapshots, strict=True)
            if snap is not None
        ]
        await asyncio.gather(*sends)
        # Expired leads without a snapshot (state lost) are settled too, or they would stay forever.
        await self.state.settle(expired)
        return len(sends)

    async def _sweep_windows(self, watermark: float) -> int:
        """``es_dfm``: send each lead whose window passed without a conversion to the learner.

        A cursor (the latest creation time swept, in Redis) makes each lead due once; a
        replay after a crash sends it again, and the learner learns it once.
        """
        cursor = await self.state.advance_watermark("es_dfm_window", 0)
        due = await self.state.due(cursor, watermark - self._window_s)
        if not due:
            return 0
        snapshots = await self.state.pending_snapshots([lead_id for lead_id, _ in due])
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        sends = [
            await self._emit_example(lead_id, snap, 0, now, None, "window")
            for (lead_id, _), snap in zip(due, snapshots, strict=True)
            if snap is not None
        ]
        await asyncio.gather(*sends)
        await self.state.advance_watermark("es_dfm_window", due[-1][1])
        return len(sends)


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
