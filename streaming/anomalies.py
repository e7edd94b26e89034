"""The anomaly monitor: batches in, windowed series, detectors, anomalies out.

:meth:`AnomalyMonitor.observe` takes what the pipeline learned from one batch
(the fresh accepted events, the number rejected, the scores of new leads),
adds it to the open windows in the store, and closes every window that the
event-time watermark (the newest event time seen, minus the allowed
lateness) has passed. Closing a window updates each series' detector and
reports anomalies to the ``anomalies`` topic, the ClickHouse table and
Prometheus. Detection is advisory: a failure is logged and counted, never
raised into the pipeline.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis

from config.settings import AnomalySettings, Settings
from online_models.anomaly import ReferenceDistribution, SeasonalBaseline
from sinks.clickhouse import write_with_retry
from sinks.metrics import Metrics
from sinks.rows import TableSink, mapping_row
from streaming._series_store import MemorySeriesStore, RedisSeriesStore, SeriesStore
from streaming.codec import dumps
from streaming.ingest import Accepted
from streaming.series import (
    DAY_S,
    METRICS,
    MIN_SCALE,
    DeltaBuilder,
    Observation,
    describe,
    drift_bins,
    is_opportunity,
    kind_of,
    observations,
    to_datetime,
    window_start,
)

if TYPE_CHECKING:  # the pipeline imports this module
    from streaming.pipeline import Sender

__all__ = ["AnomalyMonitor", "MemorySeriesStore", "RedisSeriesStore", "SeriesStore"]

log = structlog.get_logger(__name__)

_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
#: At most this many windows are closed at once (a jump in event time skips older ones).
_MAX_CLOSE = 2000
#: Extra lateness allowed to day windows: spend for a day is reported at its very end.
_DAY_LATENESS_S = 3600


class AnomalyMonitor:
    """Windowed series and their detectors for one worker (state in ``store``).

    Parameters
    ----------
    settings
        The anomaly settings.
    store
        Window sums and detector states (Redis in a worker).
    metrics
        The worker's metrics.
    topic
        The anomalies topic; with ``send``, where anomalies are produced.
    send
        Produces a message (None: anomalies are not produced).
    sink
        The ClickHouse ``anomalies`` table (None: not written).
    clock
        Wall clock, for ``detected_at``.
    on_anomaly
        Called with each reported anomaly record (benchmarks, tests).
    """

    def __init__(
        self,
        settings: AnomalySettings,
        store: SeriesStore,
        metrics: Metrics,
        topic: str = "anomalies",
        send: Sender | None = None,
        sink: TableSink | None = None,
        clock: Callable[[], float] = time.time,
        on_anomaly: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.topic = topic
        self.send = send
        self.sink = sink
        self.clock = clock
        self.on_anomaly = on_anomaly
        self._lengths = {"w": settings.window_s, "d": DAY_S, "c": settings.window_s}
        # A day's spend is reported at its very end; a cohort needs time to convert.
        self._lateness = {
            "w": settings.allowed_lateness_s,
            "d": settings.allowed_lateness_s + _DAY_LATENESS_S,
            "c": settings.allowed_lateness_s + settings.conversion_within_s,
        }
        self._frontier = float("-inf")
        self._closed: dict[str, int] = {}
        self._groups: set[str] = set()
        self._exported: dict[str, tuple[str, str, str, str]] = {}

    @classmethod
    def for_worker(
        cls,
        settings: Settings,
        client: Redis,
        prefix: str,
        metrics: Metrics,
        send: Sender,
        sink: TableSink | None,
        clock: Callable[[], float] = time.time,
    ) -> AnomalyMonitor:
        """The monitor a worker's pipeline uses: state in Redis, anomalies to Kafka and ClickHouse."""
        horizon = int(settings.models.horizon_days * DAY_S)
        store = RedisSeriesStore(client, f"{prefix}:an", sums_ttl_s=30 * DAY_S,
                                 attribution_ttl_s=horizon)  # fmt: skip
        return cls(settings.anomalies, store, metrics, settings.kafka.topics.anomalies, send, sink,
                   clock)  # fmt: skip

    # -- batches ----------------------------------------------------------------------

    async def observe(
        self,
        kind: str,
        events: Sequence[Accepted],
        rejected: int = 0,
        scores: Sequence[float] | None = None,
    ) -> None:
        """Add one batch: fresh accepted events of ``kind``, the rejected count, lead scores.

        Never raises: failures are logged and counted (``leadstream_anomaly_errors_total``).
        """
        if not self.settings.enabled or (not events and not rejected):
            return
        try:
            await self._observe(kind, events, rejected, scores)
        except Exception as exc:
            self.metrics.anomaly_errors.labels(stage="observe").inc()
            log.warning("anomalies.failed", kind=kind, error=repr(exc))

    async def _observe(
        self, kind: str, events: Sequence[Accepted], rejected: int, scores: Sequence[float] | None
    ) -> None:
        b = DeltaBuilder(self.settings.window_s)
        # Lead events drive event time: the densest stream, and the one the series count.
        # Another kind's consumer running ahead (a catch-up) then never closes a window early.
        frontier = self._frontier
        newest = float("-inf")
        oldest = float("inf")
        attributions: list[tuple[str, str]] = []
        owners: list[str | None] = []
        stage = self.settings.conversion_stage
        within = self.settings.conversion_within_s
        if kind == "conversion":
            events = [a for a in events if a.event.get("stage") == stage]
            owners = await self.store.attribution([a.key for a in events])
        too_late = 0
        for i, a in enumerate(events):
            ts = a.occurred_at.timestamp()
            day = a.event.get("date") if kind == "spend" else None
            cls, at = ("d", _day_epoch(day)) if isinstance(day, date) else ("w", ts)
            if at < self._closed.get(cls, float("-inf")):
                too_late += 1
                continue
            newest, oldest = max(newest, ts), min(oldest, ts)
            lateness = max(0.0, frontier - ts) if frontier > float("-inf") else 0.0
            e = a.event
            if kind == "lead" and e.get("event_type") == "lead_created":
                channel, campaign = e.get("channel") or "", e.get("campaign_id") or ""
                score = scores[i] if scores is not None and i < len(scores) else None
                b.add_lead(ts, channel, campaign, score, lateness, drift_bins(e))
                attributions.append((a.key, f"{channel}\t{campaign}\t{ts}"))
                continue
            b.add_lateness(ts, lateness)
            if kind == "conversion":
                channel, campaign, created = _owner(owners[i])
                cohort = (created if created is not None and ts - created <= within
                          and created >= self._closed.get("c", float("-inf")) else None)  # fmt: skip
                b.add_conversion(ts, channel, campaign, cohort)
            elif kind == "spend":
                b.add_spend(at, e.get("channel"), e.get("campaign_id"), float(e["amount"]))
        if too_late:
            self.metrics.events_too_late.inc(too_late)
        if rejected:
            at = frontier if frontier > float("-inf") else newest
            if at > float("-inf"):
                b.add_rejected(at, rejected)
        if not b.deltas:
            return
        new_groups = b.groups - self._groups
        first = {c: window_start(oldest if oldest < float("inf") else frontier, n)
                 for c, n in self._lengths.items()}  # fmt: skip
        candidate = newest if kind == "lead" else float("-inf")
        self._frontier, closed = await self.store.add(
            b.deltas, new_groups, attributions, candidate, first
        )
        self._groups |= new_groups
        self._closed.update(closed)
        await self._close_due()

    # -- windows ----------------------------------------------------------------------

    async def _close_due(self) -> None:
        due = {}
        for c, n in self._lengths.items():
            upto = window_start(self._frontier - self._lateness[c], n)
            if upto > self._closed.get(c, upto):
                due[c] = upto
        if not due:
            return
        token = await self.store.lock(ttl_s=60.0)
        if token is None:
            return  # another worker is closing windows; it will close these too
        try:
            for cls, upto in due.items():
                start = await self.store.claim(cls, upto)
                if start is None:
                    continue
                self._closed[cls] = upto
                length = self._lengths[cls]
                start = max(start, upto - _MAX_CLOSE * length)
                for w in range(start, upto, length):
                    await self._close_window(cls, w, length)
        finally:
            await self.store.unlock(token)
        await self.sync_gauges()

    async def _close_window(self, cls: str, start: int, length: int) -> None:
        cfg = self.settings
        sums = await self.store.take(cls, start)
        groups = sorted(await self.store.groups()) if cls == "w" else []
        obs = observations(cls, sums, groups, cfg.min_leads, cfg.psi_min_leads)
        states = await self.store.load([o.series for o in obs])
        warmup = max(1, round(cfg.warmup_days * DAY_S / length))
        records: list[dict[str, Any]] = []
        active: dict[str, dict[str, str]] = {}
        cleared: list[str] = []
        for o in obs:
            state = states.get(o.series) or {}
            found = self._detect(o, state, start, length, warmup)
            states[o.series] = state
            if found is None:
                cleared.append(o.series)
                continue
            record, emit = found
            active[o.series] = {k: record[k] for k in ("kind", "severity", "dimension")}
            if emit:
                records.append(record)
        await self.store.save(states)
        await self.store.set_active(active, cleared)
        self.metrics.windows_closed.labels(window=cls).inc()
        if records:
            await self._report(records)

    def _detect(
        self, o: Observation, state: dict[str, Any], start: int, length: int, warmup: int
    ) -> tuple[dict[str, Any], bool] | None:
        """Update the series' state with window ``start``; the anomaly and whether to report it."""
        cfg = self.settings
        if o.family == "psi":
            assert o.histogram is not None
            hist = dict(o.histogram)
            ref = (ReferenceDistribution.from_dict(state["ref"]) if "ref" in state
                   else ReferenceDistribution(warmup, threshold=cfg.psi_threshold))  # fmt: skip
            value = ref.check_one(hist)
            ref.learn_one(hist)
            state["ref"] = ref.to_dict()
            if value is None:
                return None
            if o.metric == "psi":
                self.metrics.feature_psi.labels(feature=o.group.partition("=")[2]).set(value)
            o = Observation(o.series, o.group, o.metric, value, o.n)
            expected, low, high, direction = 0.0, 0.0, cfg.psi_threshold, "up"
            surprise = cfg.threshold * value / cfg.psi_threshold
        else:
            model = (SeasonalBaseline.from_dict(state["model"]) if "model" in state
                     else SeasonalBaseline(o.family, length, warmup,
                                           min_scale=MIN_SCALE.get(o.metric, 0.0)))  # fmt: skip
            verdict = model.check_one(o.value, start, o.n)
            model.learn_one(o.value, start, o.n)
            state["model"] = model.to_dict()
            self.metrics.series_value.labels(series=o.series).set(o.value)
            if verdict is None:
                return None
            self.metrics.series_expected.labels(series=o.series).set(verdict.expected)
            expected, low, high = verdict.expected, verdict.low, verdict.high
            direction, surprise = verdict.direction, verdict.surprise
        if surprise < cfg.threshold or direction not in METRICS[o.metric][3]:
            return None
        opportunity = is_opportunity(o.metric, direction)
        severity = ("info" if opportunity else "critical" if surprise >= cfg.critical
                    else "warning")  # fmt: skip
        rank = _SEVERITY_RANK[severity]
        last = state.get("fired")
        quiet = last is not None and start - last < cfg.cooldown_windows * length
        emit = not quiet or rank > state.get("rank", 0)
        if emit:
            state["fired"], state["rank"] = start, rank
        kind = kind_of(o.metric, direction)
        dim, _, dim_value = o.group.partition("=")
        begin, end = to_datetime(start), to_datetime(start + length)
        record = {
            "anomaly_id": hashlib.sha256(f"{kind}|{o.series}|{start}".encode()).hexdigest()[:20],
            "kind": kind, "series": o.series, "dimension": dim, "dimension_value": dim_value,
            "metric": o.metric, "window_start": begin, "window_end": end,
            "value": round(o.value, 6), "expected": round(expected, 6),
            "expected_low": round(low, 6), "expected_high": round(high, 6),
            "severity": severity, "direction": direction, "opportunity": opportunity,
            "description": describe(o, direction, expected, low, high, begin, end),
            "detected_at": to_datetime(self.clock()), "surprise": round(surprise, 2),
        }  # fmt: skip
        return record, emit

    async def _report(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.metrics.anomalies.labels(kind=r["kind"], severity=r["severity"]).inc()
            log.info("anomaly", kind=r["kind"], series=r["series"], severity=r["severity"],
                     value=r["value"], expected=r["expected"])  # fmt: skip
            if self.on_anomaly is not None:
                self.on_anomaly(r)
        if self.sink is not None:
            rows = [mapping_row("anomalies", r) for r in records]
            await write_with_retry(self.sink, rows, self.metrics)
        if self.send is not None:
            sent = [await self.send(self.topic, r["series"].encode(), dumps(r)) for r in records]
            for s in sent:
                await s

    async def sync_gauges(self) -> None:
        """Export the series that are anomalous now (read from the store; any worker closes)."""
        try:
            active = await self.store.active()
        except Exception as exc:
            self.metrics.anomaly_errors.labels(stage="sync").inc()
            log.warning("anomalies.sync_failed", error=repr(exc))
            return
        gauge = self.metrics.anomaly_active
        for series, labels in list(self._exported.items()):
            now = active.get(series)
            if now is None or (now["kind"], now["severity"], now["dimension"]) != labels[1:]:
                gauge.remove(*labels)
                del self._exported[series]
        for series, a in active.items():
            labels = (series, a["kind"], a["severity"], a["dimension"])
            gauge.labels(*labels).set(1)
            self._exported[series] = labels


def _owner(value: str | None) -> tuple[str | None, str | None, float | None]:
    """Channel, campaign and creation time of a lead, from its attribution."""
    if not value:
        return None, None, None
    channel, campaign, created = [*value.split("\t"), "", "", ""][:3]
    return channel or None, campaign or None, float(created) if created else None


def _day_epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=to_datetime(0).tzinfo).timestamp()
