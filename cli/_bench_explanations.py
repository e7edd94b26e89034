"""What explanations cost: the worker's scoring throughput with them on and off, same run.

The issue's target: scoring throughput does not drop by more than 10% with
explanations on. Each run is `leadstream worker` as its own process (as in
`leadstream bench scoring`) on the same pre-produced backlog of lead events, with its
own consumer group, Redis prefix, chDB folder and scored topic, so runs do not see
each other's state. Runs alternate (on, off, then off, on, ...) so that a machine
getting slower or faster during the benchmark weighs on both modes alike; the drop
is the median over the rounds of each round's own drop. Two measures of each run: throughput (scored records
per second) and the worker process's own CPU time per event (from /proc), which
other processes on a shared machine disturb much less. The in-process cost of the
two scoring paths (features excluded) is measured too: the best of five passes.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from cli._bench_scoring import (
    lead_events,
    measure,
    read_scored,
    spawn_worker,
    trained_bundle,
)
from config.settings import Settings
from online_models.bundle import ModelBundle, ModelStore
from online_models.features import lead_features
from online_models.importance import published_explanation
from streaming.producer import produce

#: The issue's bound on the throughput lost to explanations.
MAX_DROP = 0.10


def _run_settings(settings: Settings, run: int, explain: bool) -> Settings:
    """Settings of one isolated worker run."""
    k = settings.kafka
    return settings.model_copy(update={
        "kafka": k.model_copy(update={
            "app_id": f"bench-explain-{run}",
            "topics": k.topics.model_copy(update={"scored": f"scored.explain.{run}"}),
        }),
        "redis": settings.redis.model_copy(update={"key_prefix": f"bench-explain-{run}"}),
        "clickhouse": settings.clickhouse.model_copy(
            update={"chdb_path": settings.clickhouse.chdb_path.parent / f"chdb-explain-{run}"}
        ),
        "models": settings.models.model_copy(update={"explain": explain}),
    })  # fmt: skip


class _CpuSampler:
    """Polls a process's CPU seconds (user + system, from /proc) with wall-clock stamps.

    On a shared machine, throughput swings with what other processes do; the worker's
    own CPU time per event hardly does, so both are reported.
    """

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> _CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        stat = Path(f"/proc/{self.pid}/stat")
        while not self._stop.is_set():
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                return
            # utime and stime: fields 14 and 15 of /proc/PID/stat, 12 and 13 after the name.
            self.samples.append((time.time(), (int(fields[11]) + int(fields[12])) / self._tick))
            self._stop.wait(self.every_s)

    def between(self, start: float, end: float) -> float:
        """CPU seconds used between two wall-clock times (linear between samples)."""
        return self._at(end) - self._at(start)

    def _at(self, t: float) -> float:
        times = [s[0] for s in self.samples]
        i = bisect.bisect_left(times, t)
        if i == 0:
            return self.samples[0][1]
        if i == len(times):
            return self.samples[-1][1]
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


def _worker_run(settings: Settings, bundle: ModelBundle, events: int) -> tuple[float, float, bool]:
    """Events per second and worker CPU µs per event of one run; whether all had reasons."""

    async def publish() -> None:
        client = aioredis.from_url(settings.redis.url)
        await ModelStore(client, settings.redis.key_prefix).publish(bundle)
        await client.aclose()

    asyncio.run(publish())
    worker = spawn_worker(settings, None)
    try:
        with _CpuSampler(worker.pid) as cpu:
            records = asyncio.run(
                read_scored(settings.kafka.bootstrap, settings.kafka.topics.scored, events, 600)
            )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    # Until its first model refresh a worker scores with an empty model (nothing to
    # explain): only the records scored with the published model count.
    trained = [(ts, r) for ts, r in records if r["model_version"] > 0]
    if len(trained) < events // 2:
        raise RuntimeError(f"only {len(trained)} of {events} leads were scored by the model")
    phase = measure(trained, None)
    start = min(ts for ts, _ in trained)
    used = cpu.between(start, start + phase.seconds)
    return phase.eps, used * 1e6 / phase.events, all(r["reasons"] for _, r in trained)


def pure_costs(settings: Settings, bundle: ModelBundle, n: int) -> dict[str, float]:
    """Microseconds per lead of the scoring step alone: explained and encoded, or a score."""
    leads = [e.value for e in lead_events(n, 4, "pure") if isinstance(e.value, dict)]
    xs = [lead_features(lead, {}) for lead in leads]
    scorer, top = bundle.scorer, settings.models.top_reasons

    def explained() -> None:
        for x, lead in zip(xs, leads, strict=True):
            orjson.dumps(published_explanation(scorer.explain_one(x), top, lead))

    def score_only() -> None:
        for x in xs:
            scorer.predict_proba_one(x)

    # The best of five: on a shared machine the minimum is the cost, the rest is noise.
    on, off = (min(_timed(fn) for _ in range(5)) for fn in (explained, score_only))
    return {"explained_us": round(on * 1e6 / n, 2), "score_only_us": round(off * 1e6 / n, 2)}


def _timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def explanation_benchmark(
    settings: Settings, events: int, rounds: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Worker throughput with explanations on and off, ``rounds`` runs of each."""
    broker = settings.kafka.bootstrap
    asyncio.run(produce(lead_events(events, 1, "xp"), broker, settings.kafka.topics))
    bundle = trained_bundle(settings)
    eps: dict[str, list[float]] = {"on": [], "off": []}
    cpu_us: dict[str, list[float]] = {"on": [], "off": []}
    run = 0
    for r in range(rounds):
        for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
            run += 1
            progress(f"run {run} of {2 * rounds}: explanations {mode}, {events} lead events")
            rate, us, reasons = _worker_run(
                _run_settings(settings, run, mode == "on"), bundle, events
            )
            if reasons != (mode == "on"):
                raise RuntimeError(f"explanations {mode}, yet reasons were {reasons}: a bad run")
            eps[mode].append(round(rate))
            cpu_us[mode].append(round(us, 1))
    on, off = statistics.median(eps["on"]), statistics.median(eps["off"])
    cpu_on, cpu_off = statistics.median(cpu_us["on"]), statistics.median(cpu_us["off"])
    # Each round's on and off runs are neighbours in time: their ratio is the least
    # disturbed by a machine that gets busier or quieter, so the drops are the medians
    # of the rounds' ratios. For CPU time: the throughput a worker bound by its own CPU
    # loses, 1 - (1 / cpu_on) / (1 / cpu_off).
    pairs = list(zip(eps["on"], eps["off"], cpu_us["on"], cpu_us["off"], strict=True))
    drops = [round(1 - e_on / e_off, 4) for e_on, e_off, _, _ in pairs]
    cpu_drops = [round(1 - c_off / c_on, 4) for _, _, c_on, c_off in pairs]
    drop, cpu_drop = statistics.median(drops), statistics.median(cpu_drops)
    return {
        "events_per_run": events,
        "rounds": rounds,
        "worker_events_per_s": eps,
        "median_on": round(on),
        "median_off": round(off),
        "drop_by_round": drops,
        "drop": drop,
        "worker_cpu_us_per_event": cpu_us,
        "median_cpu_us_on": round(cpu_on, 1),
        "median_cpu_us_off": round(cpu_off, 1),
        "drop_from_cpu_by_round": cpu_drops,
        "drop_from_cpu": cpu_drop,
        "pure_scoring_step": pure_costs(settings, bundle, min(events, 20000)),
        "targets": {"max_drop": MAX_DROP, "met": max(drop, cpu_drop) <= MAX_DROP},
    }
