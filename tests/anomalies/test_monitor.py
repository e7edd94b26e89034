"""The anomaly monitor on real Redis and chDB: windows, detection, hand-over, reporting."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from cli._bench_anomalies import accepted
from config.settings import AnomalySettings, ClickHouseSettings
from sinks.clickhouse import ClickHouseSink, connect, migrate
from sinks.metrics import Metrics
from streaming import synthetic
from streaming.anomalies import AnomalyMonitor, MemorySeriesStore, RedisSeriesStore
from streaming.ingest import Accepted

pytestmark = pytest.mark.integration
DAY = 86_400
SETTINGS = AnomalySettings(window_s=DAY, warmup_days=7, allowed_lateness_s=600)
SERIES = "channel=paid_search/lead_volume"


def stream(collapse_day: int = 10, days: int = 13) -> list[Accepted]:
    """Lead and spend events; paid search gets no leads on ``collapse_day``."""
    drop = synthetic.Anomaly("volume_drop", "paid_search", None, collapse_day, 1, 0.0)
    cfg = synthetic.GeneratorConfig(seed=5, leads=2600, days=days, anomalies=(drop,))
    # Without lead updates: they trail their lead by days, beyond the generated period.
    return [a for a in map(accepted, synthetic.generate(cfg))
            if a.kind in ("lead", "spend") and a.event["event_type"] != "lead_updated"]  # fmt: skip


async def feed(monitor: AnomalyMonitor, events: list[Accepted], until_day: float | None = None) -> int:
    """Hand events over in event-time order, a batch per 5 event-minutes; returns how many."""
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    batch: list[Accepted] = []
    n = 0
    for a in events:
        ts = a.occurred_at.timestamp()
        if until_day is not None and ts >= t0 + until_day * DAY:
            break
        if batch and (ts - batch[0].occurred_at.timestamp() > 300 or a.kind != batch[0].kind):
            await monitor.observe(batch[0].kind, batch, 0, [0.2] * len(batch))
            batch = []
        batch.append(a)
        n += 1
    if batch:
        await monitor.observe(batch[0].kind, batch, 0, [0.2] * len(batch))
    return n


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture
def chdb(tmp_path: Path) -> Iterator[Any]:
    ch = connect(ClickHouseSettings(chdb_path=tmp_path / "chdb"))
    migrate(ch, "leadstream")
    yield ch
    ch.close()  # chDB serves one data directory per process at a time


def monitor_on(client: aioredis.Redis, prefix: str, registry: CollectorRegistry, **kw: Any) -> AnomalyMonitor:
    store = RedisSeriesStore(client, prefix, sums_ttl_s=3600, attribution_ttl_s=3600)
    return AnomalyMonitor(SETTINGS, store, Metrics.create(registry), **kw)


async def test_a_collapse_is_reported_once_to_topic_table_and_gauge(
    client: aioredis.Redis, run_id: str, chdb: Any
) -> None:
    sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        sent.append((topic, key, value))
        return _done()

    registry = CollectorRegistry()
    sink = ClickHouseSink("anomalies", chdb, "leadstream", threading.Lock())
    found: list[dict[str, Any]] = []
    monitor = monitor_on(client, f"an-{run_id}", registry, topic=f"{run_id}.anomalies",
                         send=send, sink=sink, on_anomaly=found.append)  # fmt: skip
    await feed(monitor, stream(), until_day=11.1)
    ours = [r for r in found if r["series"] == SERIES]
    assert len(ours) == 1
    r = ours[0]
    assert (r["kind"], r["direction"], r["severity"], r["value"]) == ("volume_drop", "down", "critical", 0.0)
    assert r["expected_low"] > 0 and r["expected"] > r["expected_low"] and not r["opportunity"]
    assert r["window_start"] == datetime(2026, 1, 15, tzinfo=UTC)
    assert r["description"].startswith("Lead volume of channel paid_search was 0 from 2026-01-15 00:00")
    assert any(t == f"{run_id}.anomalies" and k == SERIES.encode() for t, k, _ in sent)
    rows = chdb.query(
        "SELECT kind, severity, value, dimension, dimension_value FROM leadstream.anomalies FINAL"
        " WHERE series = {s:String}", parameters={"s": SERIES},
    ).result_rows  # fmt: skip
    assert rows == [("volume_drop", "critical", 0.0, "channel", "paid_search")]
    labels = {"series": SERIES, "kind": "volume_drop", "severity": "critical", "dimension": "channel"}
    assert registry.get_sample_value("leadstream_anomaly_active", labels) == 1.0
    total = registry.get_sample_value(
        "leadstream_anomalies_total", {"kind": "volume_drop", "severity": "critical"})  # fmt: skip
    assert (total or 0) >= 1
    # The next (normal) day clears the series: the gauge goes, nothing new is reported.
    await feed(monitor, [a for a in stream() if a.occurred_at >= datetime(2026, 1, 16, 3, tzinfo=UTC)])
    assert registry.get_sample_value("leadstream_anomaly_active", labels) is None
    assert [r["window_start"].day for r in found if r["series"] == SERIES] == [15]


async def test_another_worker_takes_over_with_the_state_in_redis(client: aioredis.Redis, run_id: str) -> None:
    events = stream()
    first = monitor_on(client, f"an-{run_id}", CollectorRegistry())
    found: list[dict[str, Any]] = []
    second = monitor_on(client, f"an-{run_id}", CollectorRegistry(), on_anomaly=found.append)
    cut = datetime(2026, 1, 13, tzinfo=UTC)
    await feed(first, [a for a in events if a.occurred_at < cut])
    await feed(second, [a for a in events if a.occurred_at >= cut], until_day=11.1)
    # The second worker never saw the warm-up days, yet knows the series' normal range.
    assert [r["kind"] for r in found if r["series"] == SERIES] == ["volume_drop"]


async def test_the_seasonal_model_sees_no_anomaly_in_normal_traffic_and_drops_late_events(
    client: aioredis.Redis, run_id: str
) -> None:
    registry = CollectorRegistry()
    found: list[dict[str, Any]] = []
    monitor = monitor_on(client, f"an-{run_id}", registry, on_anomaly=found.append)
    events = stream(collapse_day=99, days=14)
    await feed(monitor, events)
    assert [r["series"] for r in found if r["dimension"] in ("overall", "channel")] == []
    closed = registry.get_sample_value("leadstream_series_windows_closed_total", {"window": "w"})
    assert (closed or 0) >= 12
    late = [a for a in events if a.kind == "lead"][:50]  # day 0: its window closed long ago
    await monitor.observe("lead", late, 0, [0.2] * len(late))
    assert registry.get_sample_value("leadstream_series_events_too_late_total") == 50.0


async def test_rejected_share_spike_and_failures_stay_advisory(client: aioredis.Redis, run_id: str) -> None:
    registry = CollectorRegistry()
    found: list[dict[str, Any]] = []
    monitor = AnomalyMonitor(SETTINGS, MemorySeriesStore(), Metrics.create(registry), on_anomaly=found.append)
    leads = [a for a in stream(collapse_day=99) if a.kind == "lead"]
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    for day in range(13):
        todays = [a for a in leads if t0 + day * DAY <= a.occurred_at.timestamp() < t0 + (day + 1) * DAY]
        bad = len(todays) // 2 if day == 10 else len(todays) // 100
        for i in range(0, len(todays), 20):
            await monitor.observe("lead", todays[i : i + 20], bad // max(1, len(todays) // 20), [0.2] * 20)
    kinds = {(r["series"], r["kind"]) for r in found}
    assert ("overall/rejected_share", "rejected_share") in kinds
    errors = CollectorRegistry()
    broken = AnomalyMonitor(SETTINGS, RedisSeriesStore(_Closed(), "x", 1, 1), Metrics.create(errors))  # type: ignore[arg-type]
    await broken.observe("lead", leads[:5], 0, [0.1] * 5)  # does not raise
    assert errors.get_sample_value("leadstream_anomaly_errors_total", {"stage": "observe"}) == 1.0


class _Closed:
    """A Redis client whose every call fails, as when the server is unreachable."""

    def register_script(self, script: str) -> Any:
        async def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("redis is unreachable")

        return fail

    def __getattr__(self, name: str) -> Any:
        return self.register_script("")


def _done() -> Any:
    import asyncio

    f = asyncio.get_running_loop().create_future()
    f.set_result(None)
    return f


def _lead(i: int, ts: float, country: str) -> Accepted:
    at = datetime.fromtimestamp(ts, tz=UTC)
    event = {"event_id": f"e{i}", "event_type": "lead_created", "occurred_at": at,
             "lead_id": f"L{i}", "channel": "email", "campaign_id": "em-01", "country": country,
             "pages_viewed": i % 7}  # fmt: skip
    return Accepted("lead", f"L{i}", f"e{i}", at, event)


async def test_a_shift_in_a_lead_feature_is_reported_as_feature_drift() -> None:
    found: list[dict[str, Any]] = []
    registry = CollectorRegistry()
    monitor = AnomalyMonitor(SETTINGS, MemorySeriesStore(), Metrics.create(registry), on_anomaly=found.append)
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    rng = __import__("random").Random(1)
    i = 0
    for day in range(14):
        mix = ("US", "US", "DE", "IN") if day != 11 else ("IN", "IN", "IN", "BR")
        todays = []
        for k in range(800):
            todays.append(_lead(i, t0 + day * DAY + k * 100, rng.choice(mix)))
            i += 1
        for j in range(0, len(todays), 100):
            await monitor.observe("lead", todays[j : j + 100], 0, [0.3] * 100)
    drift = [r for r in found if r["kind"] == "feature_drift"]
    assert [(r["series"], r["window_start"].day) for r in drift] == [("feature=country/psi", 16)]
    assert drift[0]["value"] > SETTINGS.psi_threshold and drift[0]["dimension"] == "feature"
    assert (registry.get_sample_value("leadstream_feature_psi", {"feature": "country"}) or 0) < 0.1
