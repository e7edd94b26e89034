"""Run `leadstream worker` as a real child process with per-test topics, Redis prefix and chDB."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from config.settings import Settings, TopicNames
from streaming.producer import bootstrap_servers, produce


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerRun:
    """One test's worker configuration; ``start()``/``stop()`` may be called repeatedly."""

    run_id: str
    broker_url: str
    redis_url: str
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = field(default_factory=free_port)
    role: str | None = None  # `worker --role`; None runs every role
    name: str = "worker"  # its logs' prefix (several processes may share ``tmp``)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def topics(self) -> TopicNames:
        return TopicNames(
            **{
                name: f"{self.run_id}.{default}"
                for name, default in TopicNames().model_dump().items()
            }
        )

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
        env.update({
            "LEADSTREAM_KAFKA__BOOTSTRAP": self.broker_url,
            "LEADSTREAM_KAFKA__APP_ID": f"ls-{self.run_id}",
            "LEADSTREAM_KAFKA__SESSION_TIMEOUT_S": "2",
            "LEADSTREAM_KAFKA__HEARTBEAT_INTERVAL_S": "0.5",
            "LEADSTREAM_KAFKA__BATCH_WITHIN_S": "0.1",
            "LEADSTREAM_REDIS__URL": self.redis_url,
            "LEADSTREAM_REDIS__KEY_PREFIX": f"t-{self.run_id}",
            "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(self.tmp / "chdb"),
            "LEADSTREAM_METRICS__PORT": str(self.metrics_port),
            "LEADSTREAM_MODELS__PUBLISH_EVERY_S": "0.5",
            "LEADSTREAM_MODELS__RELOAD_EVERY_S": "0.5",
            "LEADSTREAM_PII_HASH_KEY": "integration-test-key-0123456789",
            "LEADSTREAM_LOG_FORMAT": "json",
            "LEADSTREAM_LOG_LEVEL": "warning",
        })  # fmt: skip
        for name, value in self.topics.model_dump().items():
            env[f"LEADSTREAM_KAFKA__TOPICS__{name.upper()}"] = value
        env.update(self.extra_env)
        return env

    def settings(self) -> Settings:
        env = self.env()
        saved = dict(os.environ)
        try:
            os.environ.update(env)
            return Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start(self) -> None:
        self.starts += 1
        log = (self.tmp / f"{self.name}-{self.starts}.log").open("wb")
        role = ["--role", self.role] if self.role else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", *role],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.metrics_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"worker did not serve /metrics within 60 s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise RuntimeError(
                f"worker did not stop within {timeout} s: {self.log_tail()}"
            ) from None

    def log_tail(self, lines: int = 30) -> str:
        logs = sorted(self.tmp.glob(f"{self.name}-*.log"), key=lambda p: p.stat().st_mtime)
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else ""

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample from the worker's /metrics (0 if absent)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += s.value
        return total

    def wait_metric(
        self,
        name: str,
        at_least: float,
        timeout: float = 60.0,
        labels: dict[str, str] | None = None,
    ) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            value = self.metric(name, labels)
            if value >= at_least:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"{name} reached {value}, expected >= {at_least}; worker log:\n{self.log_tail()}"
        )

    def send(self, events: Iterable[Any]) -> dict[str, int]:
        return dict(asyncio.run(produce(events, self.broker_url, self.topics)))

    def read_topic(self, topic: str, expect: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Every message on ``topic`` (at least ``expect`` of them, or what arrived by the timeout)."""
        return asyncio.run(_read(self.broker_url, topic, expect, timeout))

    def clickhouse(self) -> Any:
        """A chDB client on the worker's data (only while the worker is stopped)."""
        import clickhouse_connect

        return clickhouse_connect.get_client(interface="chdb", path=str(self.tmp / "chdb"))


async def _read(broker_url: str, topic: str, expect: int, timeout: float) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(broker_url), auto_offset_reset="earliest",
        enable_auto_commit=False, group_id=None,
    )  # fmt: skip
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(orjson.loads(r.value) for r in records)
        # A little longer, to see any messages beyond the expected count.
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            out.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


#: Counters whose sum is every event the worker has dealt with, one way or another.
HANDLED = ("leadstream_events_in_total", "leadstream_events_rejected_total",
           "leadstream_events_duplicate_total")  # fmt: skip


def handled(run: WorkerRun) -> float:
    """Events the worker has taken in, rejected or dropped as duplicates (0 if not serving)."""
    try:
        return sum(run.metric(n) for n in HANDLED)
    except OSError:
        return 0.0


def wait_handled(run: WorkerRun, total: float, timeout: float = 90.0) -> None:
    """Until the worker has handled at least ``total`` events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handled(run) >= total:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker handled {handled(run)} of {total}:\n{run.log_tail()}")


def _progress(run: WorkerRun) -> float:
    """Events handled plus rows the worker's sink has written to ClickHouse."""
    try:
        return handled(run) + run.metric("leadstream_sink_rows_total")
    except OSError:
        return 0.0


def wait_quiet(
    run: WorkerRun, quiet_s: float = 2.0, timeout: float = 60.0, *, after_some: bool = False
) -> None:
    """Until the worker has handled nothing new and its sink written nothing new for
    ``quiet_s`` (and, with ``after_some``, only once it has handled something). The sink
    inserts up to ``sink_flush_s`` after the stream handled an event: quiet means both."""
    deadline = time.monotonic() + timeout
    last, since = _progress(run), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = _progress(run)
        if now != last:
            last, since = now, time.monotonic()
        elif (now or not after_some) and time.monotonic() - since >= quiet_s:
            return
    raise AssertionError(f"worker never went quiet:\n{run.log_tail()}")
