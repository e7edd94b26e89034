"""Anomaly benchmark: the detector on generated traffic with injected anomalies, in simulated time.

Events from the generator go straight to :class:`streaming.anomalies.AnomalyMonitor`
(no broker) in small batches in event-time order, as the worker's agents would
hand them over. Alarms are graded against the injected truth:

- an alarm is *true* when its group is related to an injected anomaly (the
  anomaly's campaign or channel, a campaign of its channel, or overall) and its
  window overlaps the anomaly or the ``_GRACE_DAYS`` after it (late conversions
  of the affected leads move costs and rates for days);
- an anomaly is *found* when its own series (its campaign's or channel's lead
  volume, conversion rate or cost per lead) alarms in the right direction
  during it or the day after; the delay counts windows from its start to the
  moment the alarm could be raised (window end, plus the conversion allowance
  for conversion rates);
- a second, anomaly-free run counts false alarms per series per 30 days.

The same observation streams are replayed through other detectors (River's
GaussianScorer and StandardAbsoluteDeviation, and the seasonal baseline without
seasonality), graded the same way. Throughput is measured on real Redis and
compared with the scoring path measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table
from river import anomaly as river_anomaly
from river import stats as river_stats

from config.settings import AnomalySettings
from online_models.anomaly import SeasonalBaseline
from online_models.features import lead_features
from online_models.lead_scorer import LeadScorer
from sinks.metrics import Metrics
from streaming import synthetic
from streaming.anomalies import AnomalyMonitor, MemorySeriesStore, RedisSeriesStore
from streaming.ingest import Accepted
from streaming.series import DAY_S, METRICS, MIN_SCALE, Observation

_GRACE_DAYS = 10
_KINDS: tuple[tuple[synthetic.AnomalyKind, float], ...] = (
    ("volume_spike", 3.0), ("volume_drop", 0.15), ("conversion_drop", 0.2),
    ("cpl_spike", 2.0), ("conversion_surge", 3.0),
)  # fmt: skip
PRIMARY: dict[str, tuple[str, str]] = {
    "volume_spike": ("lead_volume", "up"), "volume_drop": ("lead_volume", "down"),
    "conversion_drop": ("conversion_rate", "down"), "conversion_surge": ("conversion_rate", "up"),
    "cpl_spike": ("cost_per_lead", "up"),
}  # fmt: skip


@dataclass(frozen=True)
class Alarm:
    """One reported anomaly, reduced to what grading needs."""

    series: str
    group: str
    metric: str
    direction: str
    start: float  # window start, epoch seconds
    end: float
    raised: float  # event time at which the alarm could be raised


def plan(seed: int, days: int, first_day: int, every: int = 6, length: int = 4) -> tuple[synthetic.Anomaly, ...]:  # fmt: skip
    """Injected anomalies: one every ``every`` days from ``first_day``, cycling through kinds."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not secrets
    out = []
    for i, day in enumerate(range(first_day, days - length - 2, every)):
        kind, factor = _KINDS[i % len(_KINDS)]
        channel = rng.choice([c for c in synthetic.CAMPAIGNS if c not in ("organic_search", "referral")]
                             if kind == "cpl_spike" else list(synthetic.CAMPAIGNS))  # fmt: skip
        campaigns = synthetic.CAMPAIGNS[channel]
        # Campaign-level for the larger campaigns, channel-level otherwise (small ones are noisy).
        campaign = rng.choice(campaigns) if kind.startswith("volume") or kind == "cpl_spike" else None
        out.append(synthetic.Anomaly(kind, channel, campaign, day, length, factor))
    return tuple(out)


def accepted(e: synthetic.Emitted) -> Accepted:
    """A generated event as the ingest would accept it (no PII in generated leads' numbers)."""
    assert isinstance(e.value, dict)
    v = dict(e.value)
    v["occurred_at"] = datetime.fromisoformat(str(v["occurred_at"]).replace("Z", "+00:00"))
    if e.kind == "spend":
        v["date"] = date.fromisoformat(v["date"])
        v["amount"] = Decimal(v["amount"])
    return Accepted(e.kind, e.key, str(v["event_id"]), v["occurred_at"], v)


class _Recording(AnomalyMonitor):
    """A monitor that also keeps every observation and alarm (for grading and replays)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[Observation, int, int]] = []
        self.alarms: list[Alarm] = []
        self.on_anomaly = self._alarm

    def _detect(
        self, o: Observation, state: dict[str, Any], start: int, length: int, warmup: int
    ) -> tuple[dict[str, Any], bool] | None:
        self.seen.append((o, start, length))
        return super()._detect(o, state, start, length, warmup)

    def _alarm(self, r: dict[str, Any]) -> None:
        start, end = r["window_start"].timestamp(), r["window_end"].timestamp()
        wait = self.settings.conversion_within_s if r["metric"] == "conversion_rate" else 0
        group = r["series"].rpartition("/")[0]
        self.alarms.append(Alarm(r["series"], group, r["metric"], r["direction"], start, end, end + wait))


def trained_scorer(cfg: synthetic.GeneratorConfig, leads: int = 5000) -> LeadScorer:
    """A scorer trained on the first leads' outcomes (a stand-in for the live model)."""
    truths: dict[str, bool] = {}
    scorer = LeadScorer()
    n = 0
    for e in synthetic.generate(cfg, truth=lambda t: truths.__setitem__(t.lead_id, t.converted)):
        if e.kind == "lead" and isinstance(e.value, dict) and e.value["event_type"] == "lead_created":
            scorer.learn_one(lead_features(e.value, {}), truths[e.key])
            n += 1
            if n >= leads:
                break
    return scorer


async def replay(
    monitor: AnomalyMonitor,
    events: Iterator[synthetic.Emitted],
    scorer: LeadScorer,
    until: float,
    flush_s: float,
) -> tuple[int, float]:
    """Feed events in event-time order, in batches of ``flush_s`` event seconds; (events, seconds)."""
    batch: dict[str, list[Accepted]] = {}
    scores: list[float] = []
    last, n, busy = 0.0, 0, 0.0

    async def flush() -> float:
        t0 = time.perf_counter()
        for kind, evs in batch.items():
            await monitor.observe(kind, evs, 0, scores if kind == "lead" else None)
        return time.perf_counter() - t0

    for e in events:
        if e.kind == "touchpoint":
            continue
        a = accepted(e)
        ts = a.occurred_at.timestamp()
        if ts >= until:
            break
        if e.kind == "lead":
            scores.append(scorer.predict_proba_one(lead_features(a.event, {}))[True])
        batch.setdefault(e.kind, []).append(a)
        n += 1
        if ts - last >= flush_s:
            busy += await flush()
            batch, scores, last = {}, [], ts
    busy += await flush()
    return n, busy


def _related(a: synthetic.Anomaly) -> set[str]:
    groups = {"overall", f"channel={a.channel}"}
    camps = (a.campaign_id,) if a.campaign_id else synthetic.CAMPAIGNS[a.channel]
    return groups | {f"campaign={c}" for c in camps}


def grade(
    alarms: list[Alarm],
    anomalies: tuple[synthetic.Anomaly, ...],
    t0: float,
    window_s: int,
    eval_from: float,
    eval_to: float,
) -> dict[str, Any]:
    """Precision, recall and delays of ``alarms`` against the injected ``anomalies``."""
    alarms = [a for a in alarms if eval_from <= a.start < eval_to]
    spans = [(a, t0 + a.start_day * DAY_S, t0 + (a.start_day + a.days) * DAY_S) for a in anomalies]
    true = 0
    for al in alarms:
        if any(al.group in _related(a) and al.start < e + _GRACE_DAYS * DAY_S and al.end > s
               for a, s, e in spans):  # fmt: skip
            true += 1
    found, delays = 0, []
    per_kind: dict[str, list[float | None]] = {}
    for a, s, e in spans:
        metric, direction = PRIMARY[a.kind]
        own = f"campaign={a.campaign_id}" if a.campaign_id else f"channel={a.channel}"
        hits = [al for al in alarms if al.group == own and al.metric == metric
                and al.direction == direction and al.start < e + DAY_S and al.end > s]  # fmt: skip
        delay = min((al.raised - s) / window_s for al in hits) if hits else None
        if delay is not None:
            found += 1
            delays.append(delay)
        per_kind.setdefault(a.kind, []).append(None if delay is None else round(delay, 2))
    return {
        "alarms": len(alarms), "true_alarms": true,
        "precision": round(true / len(alarms), 3) if alarms else None,
        "anomalies": len(anomalies), "found": found,
        "recall": round(found / len(anomalies), 3) if anomalies else None,
        "median_delay_windows": round(statistics.median(delays), 2) if delays else None,
        "delay_windows_by_kind": per_kind,
    }  # fmt: skip


def false_alarm_rate(alarms: list[Alarm], series: int, eval_from: float, eval_to: float) -> dict[str, Any]:  # fmt: skip
    """False alarms per series per 30 simulated days on anomaly-free data."""
    n = sum(eval_from <= a.start < eval_to for a in alarms)
    days = (eval_to - eval_from) / DAY_S
    return {"alarms": n, "series": series, "days": round(days, 1),
            "per_series_per_30_days": round(n / max(series, 1) / (days / 30), 4)}  # fmt: skip


# -- other detectors, replayed on the same observations ------------------------------------


class _Detector:
    """A per-series detector for the replay: ``step(value, t, n)`` → (anomalous, direction)."""

    def __init__(self, make: Callable[[], Any], score: Callable[[Any, float, float, float], tuple[bool, str]]) -> None:  # fmt: skip
        self.models: dict[str, Any] = {}
        self.make, self.score = make, score


def _seasonal(
    family: str, metric: str, length: int, warmup: int, threshold: float, seasonal: bool
) -> _Detector:
    def make() -> Any:
        return SeasonalBaseline(family, length, warmup, min_scale=MIN_SCALE.get(metric, 0.0),  # type: ignore[arg-type]  # a Family, from METRICS
                                seasonal=seasonal)  # fmt: skip

    def score(m: Any, x: float, t: float, n: float) -> tuple[bool, str]:
        v = m.check_one(x, t, n)
        m.learn_one(x, t, n)
        return (v is not None and v.surprise >= threshold), (v.direction if v else "up")

    return _Detector(make, score)


def _gaussian(warmup: int, quantile: float) -> _Detector:
    def score(m: Any, x: float, t: float, n: float) -> tuple[bool, str]:
        s = m.score_one(None, x)
        direction = "up" if m.gaussian.n_samples and x >= m.gaussian.mu else "down"
        m.learn_one(None, x)
        return s >= quantile, direction

    def make() -> Any:
        return river_anomaly.GaussianScorer(window_size=4 * warmup, grace_period=warmup)  # type: ignore[no-untyped-call]  # river's __init__ is unannotated

    return _Detector(make, score)


def _sad(warmup: int, z: float) -> _Detector:
    def score(m: Any, x: float, t: float, n: float) -> tuple[bool, str]:
        ready = m.variance.n >= warmup
        s = m.score_one(None, x) if ready else 0.0
        direction = "up" if x >= m.sub_stat.get() else "down"
        m.learn_one(None, x)
        return s >= z, direction

    return _Detector(lambda: river_anomaly.StandardAbsoluteDeviation(sub_stat=river_stats.Mean()), score)


def replay_detector(
    name: str, seen: list[tuple[Observation, int, int]], settings: AnomalySettings, cooldown: int
) -> list[Alarm]:
    """Alarms of detector ``name`` over recorded observations (cool-down as in the monitor)."""
    out: list[Alarm] = []
    dets: dict[str, _Detector] = {}
    fired: dict[str, float] = {}
    for o, start, length in seen:
        if o.family == "psi":
            continue
        warmup = max(1, round(settings.warmup_days * DAY_S / length))
        if o.series not in dets:
            if name.startswith("seasonal"):
                dets[o.series] = _seasonal(o.family, o.metric, length, warmup, settings.threshold,
                                           name == "seasonal_baseline")  # fmt: skip
            elif name == "river_gaussian_scorer":
                dets[o.series] = _gaussian(warmup, 1 - 2 * 10 ** -settings.threshold)
            else:
                dets[o.series] = _sad(warmup, 3.719)  # the one-sided 1e-4 point of a normal
        d = dets[o.series]
        model = d.models.setdefault(o.series, d.make())
        hit, direction = d.score(model, o.value, start, o.n)
        if not hit or direction not in METRICS[o.metric][3]:
            continue
        if start - fired.get(o.series, -1e18) < cooldown * length:
            continue
        fired[o.series] = start
        wait = settings.conversion_within_s if o.metric == "conversion_rate" else 0
        out.append(Alarm(o.series, o.group, o.metric, direction, start, start + length, start + length + wait))
    return out


DETECTORS = ("seasonal_baseline", "seasonal_without_seasonality", "river_gaussian_scorer",
             "river_standard_absolute_deviation")  # fmt: skip


# -- throughput ----------------------------------------------------------------------------


def scoring_eps(cfg: synthetic.GeneratorConfig, scorer: LeadScorer, leads: int = 20000) -> float:
    """Leads per second through the scoring path's core: features and an explained score."""
    rows = []
    for e in synthetic.generate(cfg):
        if e.kind == "lead" and isinstance(e.value, dict):
            rows.append(e.value)
            if len(rows) >= leads:
                break
    t0 = time.perf_counter()
    for lead in rows:
        scorer.explain_one(lead_features(lead, {}))
    return len(rows) / (time.perf_counter() - t0)


class _Timed(AnomalyMonitor):
    """A monitor that adds up the time spent closing windows."""

    closing_s = 0.0
    closed = 0

    async def _close_window(self, cls: str, start: int, length: int) -> None:
        t0 = time.perf_counter()
        await super()._close_window(cls, start, length)
        self.closing_s += time.perf_counter() - t0
        self.closed += 1


async def redis_throughput(
    redis_url: str, cfg: synthetic.GeneratorConfig, settings: AnomalySettings, events: int = 40000
) -> dict[str, float]:
    """The monitor with its state on real Redis, fed worker-sized batches (2,000 events).

    In simulated time a window closes every few hundred events; live, an hourly window
    closes once an hour. So the cost of adding events and the cost of closing a window
    are reported apart.
    """
    evs = []
    for e in synthetic.generate(cfg):
        if e.kind != "touchpoint":
            evs.append(accepted(e))
            if len(evs) >= events:
                break
    client = aioredis.from_url(redis_url)
    store = RedisSeriesStore(client, f"bench-an-{time.time_ns()}", 30 * DAY_S, 90 * DAY_S)
    monitor = _Timed(settings, store, Metrics.create(CollectorRegistry()))
    try:
        t0 = time.perf_counter()
        for i in range(0, len(evs), 2000):
            chunk = evs[i : i + 2000]
            for kind in ("lead", "conversion", "spend"):
                part = [a for a in chunk if a.kind == kind]
                await monitor.observe(kind, part, 0, [0.3] * len(part) if kind == "lead" else None)
        total = time.perf_counter() - t0
    finally:
        await client.aclose()
    adding = total - monitor.closing_s
    return {
        "events": len(evs),
        "events_per_s_adding": round(len(evs) / adding),
        "events_per_s_including_window_closes": round(len(evs) / total),
        "windows_closed": monitor.closed,
        "ms_per_window_close": round(1000 * monitor.closing_s / max(monitor.closed, 1), 1),
    }


def _worker_eps() -> float | None:
    """The worker's throughput from the scoring benchmark's last results, if any."""
    path = Path("bench/results/scoring.json")
    try:
        return float(json.loads(path.read_text())["worker"]["throughput"]["events_per_s"])
    except (OSError, KeyError, ValueError):
        return None


def benchmark(
    leads: int, days: int, seed: int, redis_url: str, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Run everything; returns the result document (without the timestamp)."""
    settings = AnomalySettings(window_s=DAY_S, warmup_days=14)
    first_day = 21
    anomalies = plan(seed, days, first_day)
    base = synthetic.GeneratorConfig(seed=seed, leads=leads, days=days)
    t0 = datetime(base.start.year, base.start.month, base.start.day, tzinfo=UTC).timestamp()
    until, eval_from = t0 + days * DAY_S, t0 + settings.warmup_days * DAY_S
    scorer = trained_scorer(base)
    runs: dict[str, _Recording] = {}
    timing: dict[str, tuple[int, float]] = {}
    for name, cfg in (("injected", synthetic.GeneratorConfig(seed=seed, leads=leads, days=days, anomalies=anomalies)),
                      ("clean", base)):  # fmt: skip
        progress(f"{name} run: {leads} leads over {days} days")
        monitor = _Recording(settings, MemorySeriesStore(), Metrics.create(CollectorRegistry()))
        timing[name] = asyncio.run(replay(monitor, synthetic.generate(cfg), scorer, until, 300.0))
        runs[name] = monitor
    series = len({o.series for o, s, _ in runs["clean"].seen if s >= eval_from})
    progress("other detectors on the same observations")
    comparison = {}
    for name in DETECTORS:
        inj = replay_detector(name, runs["injected"].seen, settings, settings.cooldown_windows)
        clean = replay_detector(name, runs["clean"].seen, settings, settings.cooldown_windows)
        comparison[name] = {**grade(inj, anomalies, t0, DAY_S, eval_from, until),
                            "clean": false_alarm_rate(clean, series, eval_from, until)}  # fmt: skip
    progress("throughput: monitor on real Redis; scoring path")
    on_redis = asyncio.run(redis_throughput(redis_url, base, AnomalySettings()))
    redis_rate = on_redis["events_per_s_adding"]
    score_rate = scoring_eps(base, scorer)
    worker_rate = _worker_eps()
    events, busy = timing["injected"]
    quality = grade(runs["injected"].alarms, anomalies, t0, DAY_S, eval_from, until)
    clean_run = false_alarm_rate(runs["clean"].alarms, series, eval_from, until)
    return {
        "data": {"leads": leads, "days": days, "seed": seed, "series": series,
                 "window_s": settings.window_s, "warmup_days": settings.warmup_days,
                 "injected": [a.__dict__ for a in anomalies]},
        "detector": "seasonal_baseline (count: negative binomial; rates: binomial; costs: log-normal)",
        "quality": quality,
        "clean_run": clean_run,
        "comparison": comparison,
        "throughput": {
            "monitor_memory_events_per_s": round(events / busy) if busy else None,
            "monitor_on_redis": on_redis,
            "scoring_path_leads_per_s": round(score_rate),
            "worker_events_per_s_in_scoring_benchmark": worker_rate,
            "ratio_monitor_adding_to_scoring_path": round(redis_rate / score_rate, 2),
        },
        "targets": {
            "precision": 0.9, "recall": 0.9, "median_delay_windows": 2,
            "false_alarms_per_series_per_30_days": 1.0,
            "met": bool(quality["precision"] and quality["precision"] >= 0.9
                        and quality["recall"] and quality["recall"] >= 0.9
                        and quality["median_delay_windows"] is not None
                        and quality["median_delay_windows"] <= 2
                        and clean_run["per_series_per_30_days"] <= 1.0
                        and redis_rate >= (worker_rate or score_rate)),
        },
    }


def run(leads: int, days: int, seed: int, out: Path, console: Console) -> Path:
    """`leadstream bench anomalies`: run on its own Redis, write and print the results."""
    import shutil
    import tempfile

    from cli._procs import start_redis
    from cli.demo import free_port

    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    started = time.perf_counter()
    try:
        with (
            start_redis(free_port(), work / "run", detach=False) as redis,
            console.status("anomaly benchmark") as status,
        ):
            result = benchmark(leads, days, seed, redis.url, lambda m: status.update(m))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "anomalies",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "anomalies.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    t = Table(title="anomaly detectors (daily windows)")
    for col in ("detector", "precision", "recall", "median delay", "false alarms /series/30d"):
        t.add_column(col, justify="left" if col == "detector" else "right")
    for name, r in result["comparison"].items():
        t.add_row(name, str(r["precision"]), str(r["recall"]), str(r["median_delay_windows"]),
                  str(r["clean"]["per_series_per_30_days"]))  # fmt: skip
    console.print(t)
    console.print(f"monitor: {result['quality']}")
    console.print(f"throughput: {result['throughput']}; targets: {result['targets']}")
    console.print(f"results: {path}")
    return path
