"""The scoring benchmark: the worker against a bare aiokafka loop, same broker, same model, same run.

Both read the same pre-produced lead events and write scored leads to a topic.
Throughput is measured from the scored records' own timestamps (first to last
produced), so the reading consumer's speed does not count. Latency is measured
in a second, paced phase: each input carries ``sent_at`` and its scored record's
timestamp says when it was published.
"""

from __future__ import annotations

import asyncio
import io
import os
import platform
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from config.settings import Settings, TopicNames
from online_models.bundle import ModelBundle, ModelStore, band, reason
from online_models.features import lead_features
from online_models.lead_scorer import LeadScorer
from streaming import synthetic
from streaming.codec import dumps
from streaming.producer import bootstrap_servers, produce


@dataclass(frozen=True)
class Phase:
    """One measured run: events, seconds, and per-event latencies if paced."""

    events: int
    seconds: float
    latencies: list[float]

    @property
    def eps(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.eps),
        }
        if self.latencies:
            q = statistics.quantiles(self.latencies, n=100)
            out |= {
                "latency_p50_ms": round(q[49] * 1000, 1),
                "latency_p99_ms": round(q[98] * 1000, 1),
            }
        return out


def lead_events(n: int, seed: int, prefix: str) -> list[synthetic.Emitted]:
    """``n`` valid lead events from the generator, with ids unique to this phase.

    Their event times span one day, as a stream at these rates would (seconds, in
    fact). A span of months pushed through in seconds would close every hourly
    anomaly window of every series thousands of times faster than real time does.
    """
    out = []
    for e in synthetic.generate(synthetic.GeneratorConfig(seed=seed, leads=n, days=1)):
        if e.kind == "lead" and not e.bad and isinstance(e.value, dict):
            value = {**e.value, "event_id": f"{prefix}-{e.value['event_id']}"}
            out.append(synthetic.Emitted(kind="lead", key=e.key, value=value))
            if len(out) == n:
                break
    return out


def trained_bundle(settings: Settings, examples: int = 5000) -> ModelBundle:
    """A model trained on generated leads, so every score has real contributions to explain."""
    rng = random.Random(3)  # noqa: S311 - simulation, not security
    m = settings.models
    bundle = ModelBundle(scorer=LeadScorer(learning_rate=m.learning_rate, l2=m.l2))
    truth = synthetic.propensities(synthetic.GeneratorConfig(seed=99, leads=examples, days=60))
    for e in synthetic.generate(synthetic.GeneratorConfig(seed=99, leads=examples, days=60)):
        if e.kind == "lead" and isinstance(e.value, dict):
            p = truth.get(str(e.value["lead_id"]), 0.1)
            bundle.scorer.learn_one(lead_features(e.value, {}), rng.random() < p)
    bundle.revenue.update(25000.0)
    return bundle


async def read_scored(
    broker: str, topic: str, expect: int, timeout: float
) -> list[tuple[float, dict[str, Any]]]:
    """(record timestamp in seconds, value) for ``expect`` records of ``topic``."""
    return [(ts, orjson.loads(v)) for ts, v in await read_records(broker, topic, expect, timeout)]


async def read_records(
    broker: str, topic: str, expect: int, timeout: float
) -> list[tuple[float, bytes]]:
    """(record timestamp in seconds, raw value) for ``expect`` records of ``topic``.

    Values are decoded only once all have arrived: a reader decoding while the worker
    runs would take CPU from it, and more of it for bigger records.
    """
    consumer = _reader(broker, topic)
    await consumer.start()
    out: list[tuple[float, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=20000)).values():
                out.extend((r.timestamp / 1000.0, r.value) for r in records if r.value is not None)
    finally:
        await consumer.stop()
    if len(out) < expect:
        raise RuntimeError(
            f"only {len(out)} of {expect} scored records arrived on {topic} within {timeout:.0f} s"
        )
    return out


def _reader(broker: str, topic: str) -> AIOKafkaConsumer:
    """A group-less consumer of ``topic`` from its start (the benchmark's own reads)."""
    return AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(broker), auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None, fetch_max_bytes=50 * 1024 * 1024,
    )  # fmt: skip


def measure(records: list[tuple[float, dict[str, Any]]], sent_at: dict[str, float] | None) -> Phase:
    stamps = [ts for ts, _ in records]
    latencies = (
        [ts - sent_at[v["event_id"]] for ts, v in records if v["event_id"] in sent_at]
        if sent_at
        else []
    )
    return Phase(len(records), max(stamps) - min(stamps), latencies)


async def bare_loop(
    broker: str, source: str, sink: str, bundle: ModelBundle, settings: Settings, n: int
) -> None:
    """The baseline: decode, the same features and explained score, produce. Nothing else."""
    m = settings.models
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap_servers(broker), auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None, fetch_max_bytes=50 * 1024 * 1024,
    )  # fmt: skip
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker), linger_ms=5, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    done = 0
    revenue = bundle.expected_revenue()
    try:
        while done < n:
            futures = []
            for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                for r in records:
                    lead = orjson.loads(r.value)
                    e = bundle.scorer.explain_one(lead_features(lead, {}))
                    body = dumps({
                        "event_id": lead["event_id"], "lead_id": lead["lead_id"], "score": e.proba,
                        "band": band(e.proba, m.band_a, m.band_b, m.band_c),
                        "expected_value": e.proba * revenue,
                        "reasons": [reason(c, lead) for c in e.top(m.top_reasons)],
                        "model_version": bundle.version,
                    })  # fmt: skip
                    futures.append(await producer.send(sink, body, key=r.key))
                    done += 1
            await asyncio.gather(*futures)
    finally:
        await consumer.stop()
        await producer.stop()


async def relay_loop(broker: str, source: str, sink: str, n: int) -> None:
    """The ceiling: move raw records to another topic, one record batch per partition.

    No decoding and no work: what the broker and aiokafka allow a loop on this machine
    (issue 14's yardstick beside the bare loop).
    """
    consumer = _reader(broker, source)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker), linger_ms=5, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    done = 0
    try:
        while done < n:
            deliveries = []
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=20000)).items():
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                        deliveries.append(
                            await producer.send_batch(batch, sink, partition=tp.partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None)
                    done += 1
                deliveries.append(await producer.send_batch(batch, sink, partition=tp.partition))
            await asyncio.gather(*deliveries)
    finally:
        await consumer.stop()
        await producer.stop()


def run_ceiling(settings: Settings, events: int) -> Phase:
    """Events per second through :func:`relay_loop` on the same broker and input."""
    broker = settings.kafka.bootstrap
    topics = settings.kafka.topics.model_copy(update={"leads": "ceiling.leads.raw"})

    async def go() -> Phase:
        await produce(lead_events(events, 1, "tp"), broker, topics)
        await relay_loop(broker, topics.leads, "ceiling.out", events)
        return measure(await read_scored(broker, "ceiling.out", events, 600), None)

    return asyncio.run(go())


def run_worker_phases(
    settings: Settings,
    events: int,
    rates: list[float],
    latency_seconds: float,
    profile: Path | None,
    progress: Callable[[str], None],
) -> tuple[Phase, list[Phase]]:
    """Run `leadstream worker` as its own process, as in production: a backlog, then paced phases.

    The backlog is produced before the worker starts, so producing does not compete with it.
    """
    topics = settings.kafka.topics
    broker = settings.kafka.bootstrap

    async def prepare() -> None:
        client = aioredis.from_url(settings.redis.url)
        await ModelStore(client, settings.redis.key_prefix).publish(trained_bundle(settings))
        await client.aclose()
        await produce(lead_events(events, 1, "tp"), broker, topics)

    asyncio.run(prepare())
    progress(f"worker: backlog of {events} lead events")
    worker = spawn_worker(settings, profile)
    try:
        backlog = asyncio.run(read_scored(broker, topics.scored, events, timeout=600))
        throughput = measure(backlog, None)
        latency = []
        total = events
        for i, rate in enumerate(rates):
            progress(f"worker: paced phase, {rate:.0f} events/s for {latency_seconds:.0f} s")
            paced_n = int(rate * latency_seconds)
            total += paced_n

            async def paced(
                rate: float = rate, n: int = paced_n, seen: int = total, i: int = i
            ) -> Phase:
                prefix = f"lat{i}"
                sent_at = await _produce_stamped(
                    lead_events(n, 2 + i, prefix), broker, topics, rate
                )
                records = await read_scored(broker, topics.scored, seen, timeout=120)
                return measure(
                    [r for r in records if r[1]["event_id"].startswith(f"{prefix}-")], sent_at
                )

            latency.append(asyncio.run(paced()))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    if worker.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"the worker exited with {worker.returncode}")
    return throughput, latency


def spawn_worker(settings: Settings, profile: Path | None) -> subprocess.Popen[bytes]:
    """`leadstream worker` as its own process on ``settings`` (optionally under cProfile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    k = settings.kafka
    env |= {
        "LEADSTREAM_KAFKA__BOOTSTRAP": k.bootstrap, "LEADSTREAM_KAFKA__APP_ID": k.app_id,
        "LEADSTREAM_KAFKA__SESSION_TIMEOUT_S": str(k.session_timeout_s),
        "LEADSTREAM_KAFKA__HEARTBEAT_INTERVAL_S": str(k.heartbeat_interval_s),
        "LEADSTREAM_KAFKA__DATA_DIR": str(settings.clickhouse.chdb_path.parent / "faust"),
        "LEADSTREAM_REDIS__URL": settings.redis.url,
        "LEADSTREAM_REDIS__KEY_PREFIX": settings.redis.key_prefix,
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(settings.clickhouse.chdb_path),
        "LEADSTREAM_METRICS__PORT": "0",
        "LEADSTREAM_KAFKA__BATCH_SIZE": str(k.batch_size),
        "LEADSTREAM_KAFKA__BATCH_WITHIN_S": str(k.batch_within_s),
        "LEADSTREAM_KAFKA__TOPICS__LEADS": k.topics.leads,
        "LEADSTREAM_KAFKA__TOPICS__SCORED": k.topics.scored,
        "LEADSTREAM_MODELS__EXPLAIN": str(settings.models.explain).lower(),
        "LEADSTREAM_MODELS__RELOAD_EVERY_S": str(settings.models.reload_every_s),
        "LEADSTREAM_LOG_LEVEL": "warning",
        "LEADSTREAM_PII_HASH_KEY": settings.require_pii_key().decode(),
    }  # fmt: skip
    python = [sys.executable]
    if profile is not None:
        python += ["-m", "cProfile", "-o", str(profile)]
    return subprocess.Popen([*python, "-m", "cli.main", "worker"], env=env)  # noqa: S603


async def _produce_stamped(
    events: list[synthetic.Emitted], broker: str, topics: TopicNames, rate: float
) -> dict[str, float]:
    sent_at: dict[str, float] = {}

    def stamped() -> Iterator[synthetic.Emitted]:
        for e in events:
            assert isinstance(e.value, dict)
            now = time.time()
            sent_at[e.value["event_id"]] = now
            yield e

    await produce(stamped(), broker, topics, rate=rate)
    return sent_at


def run_bare_phases(
    settings: Settings, events: int, rate: float, latency_seconds: float
) -> tuple[Phase, Phase]:
    """The same two phases through the bare loop, on their own topics."""
    bundle = trained_bundle(settings)
    broker = settings.kafka.bootstrap
    topics = settings.kafka.topics.model_copy(update={"leads": "bare.leads.raw"})

    async def go() -> tuple[Phase, Phase]:
        await produce(lead_events(events, 1, "tp"), broker, topics)
        await bare_loop(broker, topics.leads, "bare.scored", bundle, settings, events)
        throughput = measure(await read_scored(broker, "bare.scored", events, 600), None)
        paced_n = int(rate * latency_seconds)
        paced = lead_events(paced_n, 2, "lat")
        paced_topics = topics.model_copy(update={"leads": "bare.leads.paced"})
        loop = asyncio.create_task(
            bare_loop(broker, paced_topics.leads, "bare.scored.paced", bundle, settings, paced_n)
        )
        sent_at = await _produce_stamped(paced, broker, paced_topics, rate)
        await loop
        latency = measure(await read_scored(broker, "bare.scored.paced", paced_n, 120), sent_at)
        return throughput, latency

    return asyncio.run(go())


def top_functions(profile: Path, n: int = 30) -> str:
    """The functions the worker spent most time in, from its cProfile output."""
    out = io.StringIO()
    pstats.Stats(str(profile), stream=out).sort_stats("tottime").print_stats(n)
    return out.getvalue()


def bench_settings(base: Settings, broker_url: str, redis_url: str, chdb: Path) -> Settings:
    """Settings for an isolated benchmark run."""
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={
            "bootstrap": broker_url, "session_timeout_s": 2.0, "heartbeat_interval_s": 0.5,
            "app_id": "leadstream-bench"}),
        "redis": base.redis.model_copy(update={"url": redis_url, "key_prefix": "bench"}),
        "clickhouse": base.clickhouse.model_copy(update={"chdb_path": chdb, "dsn": None}),
        "metrics": base.metrics.model_copy(update={"port": 0}),
        "pii_hash_key": base.pii_hash_key or SecretStr("benchmark-only-key-0123456789"),
    })  # fmt: skip


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def faust_floor(settings: Settings, events: int) -> float | None:
    """Events per second through a Faust agent that does nothing (what the worker no longer
    pays on its raw topics); None, with the reason logged, if that run fails: it is context,
    not one of the measured phases."""
    broker = settings.kafka.bootstrap
    topic = f"floor{int(time.time())}"
    asyncio.run(
        produce(
            lead_events(events, 3, "fl"),
            broker,
            settings.kafka.topics.model_copy(update={"leads": topic}),
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "rate"
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "cli._bench_faust_floor", broker, topic, str(events), str(result)],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not result.exists():
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            print(f"faust floor failed (status {done.returncode}): {' | '.join(tail)}")
            return None
        return float(result.read_text())


def stage_costs(settings: Settings, events: int) -> dict[str, float]:
    """Microseconds per lead event in each stage of the pipeline, in-process, without Faust.

    Uses the real Redis and chDB; produced messages are counted as delivered at once.
    """
    from collections import defaultdict
    from datetime import UTC, datetime

    from sinks.clickhouse import connect, migrate, write_with_retry
    from sinks.row_stream import TopicRows, decode
    from streaming.ingest import Ingestor
    from streaming.pipeline import Message
    from streaming.runtime import build_pipeline, table_sinks

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    leads = lead_events(events, 4, "st")
    raw = [orjson.dumps(e.value) for e in leads]
    bundle = trained_bundle(settings)
    key = settings.require_pii_key()

    # The pure stages on their own.
    ingestor = Ingestor("leads.raw", "lead", settings.pii_fields, key)
    now = datetime.now(UTC)
    t = time.perf_counter()
    accepted = [ingestor.ingest(r, now) for r in raw]
    pure_ingest = time.perf_counter() - t
    m = settings.models
    t = time.perf_counter()
    for a in accepted:
        e = bundle.scorer.explain_one(lead_features(a.event, {}))  # type: ignore[union-attr]  # generated leads are valid, so every result is Accepted
        [reason(c, a.event) for c in e.top(m.top_reasons)]  # type: ignore[union-attr]  # as above: Accepted, never Rejected
    pure_score = time.perf_counter() - t

    sent: list[tuple[str, bytes]] = []

    async def whole() -> float:
        client = aioredis.from_url(settings.redis.url)
        ch = connect(settings.clickhouse)
        migrate(ch, settings.clickhouse.database)

        async def send(topic: str, key: bytes | None, value: bytes) -> Any:
            sent.append((topic, value))
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        valid = settings.kafka.topics.valid
        pipeline = build_pipeline(
            settings, client, ch, send, key_prefix=f"{settings.redis.key_prefix}-stages",
            rows=lambda s: TopicRows(s, valid),
        )  # fmt: skip
        state = pipeline.state
        for name in ("seen", "mark", "engagement", "save_snapshots", "parked_outcomes",
                     "advance_watermark"):  # fmt: skip
            setattr(state, name, timed("redis", getattr(state, name)))
        pipeline.rows.write = timed("rows_to_topic", pipeline.rows.write)  # type: ignore[method-assign]  # a timer wraps it
        pipeline.model = bundle
        messages = [
            Message(i % 4, i, e.key.encode(), r, time.time())
            for i, (e, r) in enumerate(zip(leads, raw, strict=True))
        ]
        size = settings.kafka.batch_size
        t = time.perf_counter()
        for i in range(0, len(messages), size):
            await pipeline.handle_raw("lead", messages[i : i + size])
        total = time.perf_counter() - t
        # The sink's share: decode what the stream produced for ClickHouse, insert it in
        # batches of the sink's size (here in the same process; a sink role elsewhere).
        roles = {valid: "valid", settings.kafka.topics.scored: "scored"}
        sinks = table_sinks(settings, ch)
        t = time.perf_counter()
        step = settings.kafka.sink_max_rows
        for i in range(0, len(sent), step):
            tables: dict[str, list[Any]] = defaultdict(list)
            for topic, value in sent[i : i + step]:
                if topic in roles:
                    table, row = decode(roles[topic], value)
                    tables[table].append(row)
            for table, rows in tables.items():
                await write_with_retry(sinks[table], rows, pipeline.metrics)
        spent["sink"] = time.perf_counter() - t
        await client.aclose()
        return total

    total = asyncio.run(whole())
    us = 1e6 / events
    rest = total - spent["redis"] - spent["rows_to_topic"] - pure_ingest - pure_score
    return {
        "ingest_validate_hash_pii": round(pure_ingest * us, 1),
        "features_score_explain": round(pure_score * us, 1),
        "redis_state": round(spent["redis"] * us, 1),
        "rows_to_topic": round(spent["rows_to_topic"] * us, 1),
        "messages_metrics_other": round(rest * us, 1),
        "whole_pipeline": round(total * us, 1),
        "sink_decode_insert_per_lead": round(spent["sink"] * us, 1),
    }
