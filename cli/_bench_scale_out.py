"""`leadstream bench scale-out`: one, then two stream workers on the same broker and input.

Each run has its own topics, consumer groups, Redis prefix and chDB folder, on a broker
and a Redis this benchmark starts (so their processes' CPU time is theirs). The parts run
as they would in production, one process per role: ``worker --role sink``, ``worker
--role learner`` and N ``worker --role stream``. The stream workers join their group
first and are given their partitions; then the input (generated once, the same for every
run) is produced as fast as the broker takes it. Measured over the middle of the run,
from 20% to 90% of the events handled (start-up, the group's join and the tail excluded):
events per second across the stream workers, and the CPU seconds per event of every
process (from /proc: user + system), by role.

The input spans a couple of days of event time by default, as a live stream sees about
that much in a day or two: a replay of months in seconds would close every hourly
anomaly window of those months within the run, serial work (one worker at a time closes
windows) that a live stream spreads over the months (``--days`` shows that case).

Read the ratio with the machine in mind: on two cores the broker, Redis, the sink and
the learner share the cores with the stream workers, so two workers cannot be twice one.
CPU per event is what says whether the work itself scales: if two workers spend no more
per event than one, more cores give proportionally more throughput.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cli._bench_load import handled, private_services
from config.settings import TopicNames
from streaming import synthetic
from streaming.producer import produce

#: The measured window, as shares of the input handled.
WINDOW = (0.2, 0.9)
#: Targets of issue 15 on a 2-core machine.
TARGET_RATIO, TARGET_CPU_GROWTH = 1.3, 0.10
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Member:
    """One worker process of a run."""

    role: str
    port: int
    process: subprocess.Popen[bytes]

    def handled(self) -> float:
        return handled(self.port)


@dataclass
class Run:
    """One run's processes; the broker's and Redis's pids are measured too."""

    name: str
    env: dict[str, str]
    work: Path
    members: list[Member] = field(default_factory=list)

    def start(self, role: str, port: int) -> Member:
        log = (self.work / f"{self.name}-{role}-{len(self.members)}.log").open("wb")
        env = self.env | {"LEADSTREAM_METRICS__PORT": str(port)}
        process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "cli.main", "worker", "--role", role],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        member = Member(role, port, process)
        self.members.append(member)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"a {role} worker exited with {process.returncode}; see {log.name}"
                )
            try:
                handled(port)
                return member
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"a {role} worker served no /metrics within 90 s; see {log.name}")

    def stop(self) -> None:
        for m in self.members:
            m.process.terminate()
        for m in self.members:
            try:
                m.process.wait(60)
            except subprocess.TimeoutExpired:
                m.process.kill()
                m.process.wait(10)


def _env(broker: str, redis: str, work: Path, run: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env.update({
        "LEADSTREAM_KAFKA__BOOTSTRAP": broker, "LEADSTREAM_KAFKA__APP_ID": f"scale-{run}",
        "LEADSTREAM_KAFKA__SESSION_TIMEOUT_S": "3", "LEADSTREAM_KAFKA__HEARTBEAT_INTERVAL_S": "0.5",
        "LEADSTREAM_REDIS__URL": redis, "LEADSTREAM_REDIS__KEY_PREFIX": f"scale-{run}",
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(work / f"chdb-{run}"),
        "LEADSTREAM_PII_HASH_KEY": "scale-out-benchmark-key-0123456789",
        "LEADSTREAM_LOG_LEVEL": "warning",
    })  # fmt: skip
    for name, value in _topics(run).model_dump().items():
        env[f"LEADSTREAM_KAFKA__TOPICS__{name.upper()}"] = value
    return env


def _topics(run: str) -> TopicNames:
    return TopicNames(**{k: f"scale-{run}.{v}" for k, v in TopicNames().model_dump().items()})


def measure(
    broker: str, redis: str, pids: dict[str, int], work: Path, streams: int,
    events: Sequence[synthetic.Emitted], ports: Callable[[], int], report: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    """One run with ``streams`` stream workers; its throughput and CPU per event by role."""
    name = f"w{streams}-{int(time.time())}"
    run = Run(name, _env(broker, redis, work, name), work)
    produced: dict[str, float] = {}

    def send() -> None:
        started = time.monotonic()
        asyncio.run(produce(events, broker, _topics(name)))
        produced["seconds"] = time.monotonic() - started

    try:
        run.start("sink", ports())
        run.start("learner", ports())
        stream = [run.start("stream", ports()) for _ in range(streams)]
        time.sleep(8.0)  # the stream workers join their group and are given partitions
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        samples: list[tuple[float, float, dict[str, float]]] = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            handled = sum(m.handled() for m in stream)
            cpu = {f"{m.role}-{i}": cpu_seconds(m.process.pid) for i, m in enumerate(run.members)}
            cpu |= {role: cpu_seconds(pid) for role, pid in pids.items()}
            samples.append((time.monotonic(), handled, cpu))
            if handled >= len(events):
                break
            time.sleep(1.0)  # a scrape costs the worker's GIL: not too often
        sender.join(60)
        per_worker = [m.handled() for m in stream]
    finally:
        run.stop()
    return _window(samples, len(events), streams, per_worker, produced.get("seconds"), report)


def _window(
    samples: list[tuple[float, float, dict[str, float]]], total: int, streams: int,
    per_worker: list[float], produce_s: float | None, report: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    low, high = (next(s for s in samples if s[1] >= share * total) for share in WINDOW)
    seconds, handled = high[0] - low[0], high[1] - low[1]
    if seconds <= 0:  # sampled once a second: a tiny input is handled between two samples
        raise ValueError(f"{total:,} events were handled too fast to measure: use more --leads")
    cpu = {name: high[2][name] - low[2][name] for name in high[2]}
    by_role: dict[str, float] = {}
    for name, seconds_used in cpu.items():
        role = name.rpartition("-")[0] or name
        by_role[role] = by_role.get(role, 0.0) + seconds_used
    out = {
        "stream_workers": streams, "events": total, "events_per_worker": per_worker,
        "window": {"from_share": WINDOW[0], "to_share": WINDOW[1], "seconds": round(seconds, 2),
                   "events": int(handled)},
        "events_per_s": round(handled / seconds),
        "cpu_us_per_event": {r: round(1e6 * v / handled, 1) for r, v in sorted(by_role.items())},
        "cpu_cores_busy": {r: round(v / seconds, 2) for r, v in sorted(by_role.items())},
        "produce_seconds": None if produce_s is None else round(produce_s, 2),
    }  # fmt: skip
    report(f"{streams} stream worker(s): {out['events_per_s']:,} events/s; CPU µs/event "
           f"{out['cpu_us_per_event']}")  # fmt: skip
    return out


def run_bench_scale_out(
    leads: int, out: Path, report: Callable[[str], None], streams: Sequence[int] = (1, 2),
    days: int = 2, rounds: int = 3,
) -> dict[str, Any]:
    """The whole benchmark: own broker and Redis, a run per worker count, ``scale_out.json``."""
    import json
    from datetime import UTC, datetime

    from cli._bench_scoring import machine
    from cli.demo import free_port

    events = list(synthetic.generate(synthetic.GeneratorConfig(seed=15, leads=leads, days=days)))
    report(f"{len(events):,} events ({leads:,} leads), runs with {', '.join(map(str, streams))}"
           " stream worker(s)")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with private_services("leadstream-scale-out-") as (work, broker, redis):
        pids = {"broker": broker.pid, "redis": redis.pid}
        # Rounds alternate the worker counts, so that the machine's slow spells fall on
        # both; the verdict compares medians.
        runs = [measure(broker.url, redis.url, pids, work, n, events, free_port, report)
                for _ in range(rounds) for n in streams]  # fmt: skip
    result = {"benchmark": "scale-out", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "leads": leads, "days": days, "rounds": rounds, "runs": runs, **verdict(runs)}  # fmt: skip
    path = out / "scale_out.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    report(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    report(f"results: {path}")
    return result


def verdict(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median throughput of the most workers against the fewest, and how CPU per event grew.

    >>> one = {"stream_workers": 1, "events_per_s": 4000,
    ...        "cpu_us_per_event": {"stream": 200.0, "sink": 50.0}}
    >>> two = {"stream_workers": 2, "events_per_s": 6000,
    ...        "cpu_us_per_event": {"stream": 210.0, "sink": 50.0}}
    >>> v = verdict([one, two]); v["ratio"], v["stream_cpu_growth"], v["meets_targets"]
    (1.5, 0.05, True)
    """
    counts = sorted({r["stream_workers"] for r in runs})
    few, many = ([r for r in runs if r["stream_workers"] == n] for n in (counts[0], counts[-1]))

    def median(rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
        return float(statistics.median(pick(r) for r in rows))

    def growth(pick: Callable[[dict[str, float]], float]) -> float:
        before = median(few, lambda r: pick(r["cpu_us_per_event"]))
        after = median(many, lambda r: pick(r["cpu_us_per_event"]))
        return round(after / before - 1.0, 3)

    ratio = median(many, lambda r: r["events_per_s"]) / median(few, lambda r: r["events_per_s"])
    stream = growth(lambda c: c["stream"])
    return {
        "ratio": round(ratio, 3),
        "ratios_by_round": [round(b["events_per_s"] / a["events_per_s"], 3)
                            for a, b in zip(few, many, strict=False)],
        "stream_cpu_growth": stream,
        "total_cpu_growth": growth(lambda c: sum(c.values())),
        "targets": {"ratio_at_least": TARGET_RATIO, "cpu_growth_at_most": TARGET_CPU_GROWTH},
        "meets_targets": ratio >= TARGET_RATIO and stream <= TARGET_CPU_GROWTH,
    }  # fmt: skip
