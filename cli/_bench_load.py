"""`leadstream bench load`: hold a rate for N minutes; sample the worker's memory and lag.

The worker runs as its own process (`leadstream worker`) on a broker and Redis this
benchmark starts, with chDB in a temporary folder, so its resident memory (RSS) is
its own. Lag is counted as events sent minus events the worker has handled (its
``/metrics``): Tansu reports wrong log-end offsets after batched produces, so the
broker's lag figures cannot be trusted here. Stable means no upward trend: the
least-squares slopes of RSS (after a warm-up) and of lag stay under small bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cli._spawn import ServiceHandle
from config.settings import TopicNames
from streaming import synthetic
from streaming.producer import produce

_HANDLED = ("leadstream_events_in_total", "leadstream_events_rejected_total",
            "leadstream_events_duplicate_total")  # fmt: skip
#: Share of the run treated as warm-up when fitting the memory and backlog trends.
WARMUP_SHARE = 0.25
#: Most the worker's memory may grow after warm-up over a run (issue 14: 10 minutes).
MAX_RSS_GROWTH_MB = 50.0


def worker_env(broker_url: str, redis_url: str, chdb: Path, metrics_port: int) -> dict[str, str]:
    """The environment of the benchmark's worker process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env.update({
        "LEADSTREAM_KAFKA__BOOTSTRAP": broker_url, "LEADSTREAM_KAFKA__APP_ID": "leadstream-load",
        "LEADSTREAM_KAFKA__SESSION_TIMEOUT_S": "2", "LEADSTREAM_KAFKA__HEARTBEAT_INTERVAL_S": "0.5",
        "LEADSTREAM_REDIS__URL": redis_url, "LEADSTREAM_REDIS__KEY_PREFIX": "load",
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(chdb), "LEADSTREAM_METRICS__PORT": str(metrics_port),
        "LEADSTREAM_PII_HASH_KEY": os.environ.get("LEADSTREAM_PII_HASH_KEY", "load-benchmark-key-0123456789"),
        "LEADSTREAM_LOG_LEVEL": "warning",
    })  # fmt: skip
    return env


def endless_events(deadline: float) -> Iterator[synthetic.Emitted]:
    """Generated traffic, seed after seed, until the monotonic ``deadline``."""
    for seed in itertools.count(1):
        for event in synthetic.generate(synthetic.GeneratorConfig(seed=seed, leads=20_000)):
            if time.monotonic() >= deadline:
                return
            yield event


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise ValueError(f"no VmRSS for process {pid}")


def handled(port: int) -> float:
    """Events the worker has handled so far (valid, rejected and duplicate)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name in _HANDLED)  # fmt: skip


def slope_per_min(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``ts`` (seconds), per minute.

    >>> round(slope_per_min([0, 30, 60], [100, 101, 102]), 3)
    2.0
    """
    if len(ts) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(ts), np.asarray(ys), 1)[0]) * 60.0


def run_load(
    broker_url: str, redis_url: str, work: Path, minutes: float, rate: float, metrics_port: int,
    report: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """Start the worker, send ``rate`` events/s for ``minutes``, sample; returns the results."""
    log = (work / "worker.log").open("wb")
    env = worker_env(broker_url, redis_url, work / "chdb", metrics_port)
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_metrics(proc, metrics_port, work)
        samples, sent_total, send_s = asyncio.run(
            _drive(proc.pid, broker_url, minutes, rate, metrics_port, report)
        )
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < 120 and handled(metrics_port) < sent_total:
            time.sleep(0.5)
        drain_s = time.monotonic() - drain_started
        done = handled(metrics_port)
    finally:
        proc.terminate()
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return summarise(samples, rate, minutes, sent_total, send_s, done, drain_s)


def summarise(
    samples: list[dict[str, float]], rate: float, minutes: float, sent: int, send_s: float,
    handled_total: float, drain_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Trends and verdicts from the samples."""
    ts = [s["t"] for s in samples]
    rss = [s["rss_mb"] for s in samples]
    lag = [s["lag"] for s in samples]
    warm = [i for i, t in enumerate(ts) if t >= WARMUP_SHARE * ts[-1]] if ts else []
    rss_slope = slope_per_min([ts[i] for i in warm], [rss[i] for i in warm])
    lag_slope = slope_per_min([ts[i] for i in warm], [lag[i] for i in warm])
    after_warmup_min = (ts[-1] - ts[warm[0]]) / 60.0 if warm else 0.0
    rss_growth = rss_slope * after_warmup_min
    # Stable (issue 14): after warm-up, memory grows by less than 50 MB over the run
    # (its trend times its length), and the backlog does not grow: its trend stays
    # under 2% of the rate per minute (noise), and the last backlog is under 2 s of events.
    rss_ok = rss_growth < MAX_RSS_GROWTH_MB
    lag_ok = lag_slope <= 0.02 * rate and (not lag or lag[-1] <= 2.0 * rate)
    return {
        "minutes": minutes,
        "target_events_per_s": rate,
        "sent": sent,
        "sent_events_per_s": round(sent / send_s, 1) if send_s else 0.0,
        "handled": int(handled_total),
        "drain_s": round(drain_s, 1),
        # Other processes share this machine's CPUs: the 1-minute load average says how much.
        "load_avg_1m_mean": round(float(np.mean([s["load_avg_1m"] for s in samples])), 2)
        if samples else None,
        "handled_events_per_s": _handled_rate(samples),
        "rss_mb": {"start": round(rss[0], 1) if rss else None, "end": round(rss[-1], 1) if rss else None,
                   "max": round(max(rss), 1) if rss else None,
                   "slope_mb_per_min_after_warmup": round(rss_slope, 2),
                   "growth_mb_after_warmup": round(rss_growth, 1)},
        "lag_events": {"mean": round(float(np.mean(lag)), 1) if lag else None,
                       "p95": round(float(np.percentile(lag, 95)), 1) if lag else None,
                       "max": max(lag) if lag else None,
                   "slope_per_min_after_warmup": round(lag_slope, 1)},
        "stable": {"memory": rss_ok, "lag": lag_ok, "both": rss_ok and lag_ok},
        "samples": samples,
    }  # fmt: skip


def _handled_rate(samples: list[dict[str, float]]) -> float | None:
    """Events per second the worker handled between the first and the last sample."""
    if len(samples) < 2 or samples[-1]["t"] <= samples[0]["t"]:
        return None
    return round(
        (samples[-1]["handled"] - samples[0]["handled"]) / (samples[-1]["t"] - samples[0]["t"]), 1
    )


async def _drive(
    pid: int, broker_url: str, minutes: float, rate: float, port: int,
    report: Callable[[str], None],
) -> tuple[list[dict[str, float]], int, float]:  # fmt: skip
    sent = [0]
    started = time.monotonic()
    deadline = started + minutes * 60.0

    def count(n: int) -> None:
        sent[0] += n

    sender = asyncio.create_task(
        produce(endless_events(deadline), broker_url, TopicNames(), rate=rate, on_sent=count)
    )
    samples: list[dict[str, float]] = []
    while not sender.done():
        await asyncio.sleep(2.0)
        done = await asyncio.to_thread(handled, port)
        t = time.monotonic() - started
        samples.append({"t": round(t, 1), "rss_mb": round(rss_mb(pid), 1),
                        "lag": max(0.0, sent[0] - done), "handled": done,
                        "load_avg_1m": round(os.getloadavg()[0], 2)})  # fmt: skip
        if len(samples) % 15 == 0:
            s = samples[-1]
            report(f"{t:6.0f} s  sent {sent[0]:,}  rss {s['rss_mb']} MB  lag {s['lag']:,.0f}")
    total = sum((await sender).values())
    return samples, total, time.monotonic() - started


def _wait_for_metrics(proc: subprocess.Popen[bytes], port: int, work: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}; see {work / 'worker.log'}")
        try:
            handled(port)
            time.sleep(3.0)  # the consumer group join
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"worker did not serve /metrics within 90 s; see {work / 'worker.log'}")


@contextlib.contextmanager
def private_services(prefix: str) -> Iterator[tuple[Path, ServiceHandle, ServiceHandle]]:
    """A work folder with a broker and a Redis of the benchmark's own (so their CPU and
    memory are the run's); all removed at the end."""
    import shutil
    import tempfile

    from cli._procs import start_broker, start_redis
    from cli.demo import free_port

    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with (
            start_broker(free_port(), work / "run", detach=False) as broker,
            start_redis(free_port(), work / "run", detach=False) as redis,
        ):
            yield work, broker, redis
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_bench_load(
    minutes: float, rate: float, out: Path, report: Callable[[str], None]
) -> dict[str, Any]:
    """The whole benchmark: own broker and Redis, the run, ``out/load.json``; returns it."""
    import json
    from datetime import UTC, datetime

    from cli._bench_scoring import machine
    from cli.demo import free_port

    out.mkdir(parents=True, exist_ok=True)
    with private_services("leadstream-load-") as (work, broker, redis):
        report(f"holding {rate:,.0f} events/s for {minutes} min")
        result = run_load(broker.url, redis.url, work, minutes, rate, free_port(), report)
    result = {"benchmark": "load", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), **result}  # fmt: skip
    path = out / "load.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    report(json.dumps(summary, indent=2))
    report(f"results: {path}")
    return result
