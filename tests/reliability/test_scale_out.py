"""Scale-out, shown: several stream workers in one consumer group, workers killed and added.

Promise: any number of ``worker --role stream`` processes share the partitions of the raw
topics; one ``worker --role learner,sink`` learns and owns the store. A worker killed
with SIGKILL leaves at most its uncommitted batch to be done again by the next owner of
its partitions; a worker that joins takes partitions from their committed offsets; a
worker stopped with SIGTERM during a rebalance finishes and commits its batch first.
Afterwards every valid event is in ClickHouse exactly once, every lead is scored, every
labelled example was learned once, and every rejected event is a dead letter.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from online_models.bundle import ModelStore
from streaming import synthetic
from streaming.producer import produce
from tests.integration._worker import HANDLED, WorkerRun
from tests.reliability.test_faults import _latest_model

pytestmark = pytest.mark.integration


class Cluster:
    """One learner-and-store process and any number of stream workers on one test's topics."""

    def __init__(self, broker_url: str, redis_url: str, run_id: str, tmp: Path) -> None:
        self.args = (run_id, broker_url, redis_url, tmp)
        self.owner = self._member("owner", "learner,sink")
        self.streams: list[WorkerRun] = []

    def _member(self, name: str, role: str) -> WorkerRun:
        run_id, broker_url, redis_url, tmp = self.args
        return WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp,
                         role=role, name=name)  # fmt: skip

    def add_stream(self) -> WorkerRun:
        member = self._member(f"stream{len(self.streams) + 1}", "stream")
        self.streams.append(member)
        member.start()
        return member

    @property
    def alive(self) -> list[WorkerRun]:
        return [m for m in (self.owner, *self.streams)
                if m.process is not None and m.process.poll() is None]  # fmt: skip

    def progress(self) -> float:
        total = 0.0
        for m in self.alive:
            try:
                total += sum(m.metric(n) for n in HANDLED) + m.metric("leadstream_sink_rows_total")
            except OSError:
                pass
        return total

    def handled(self, member: WorkerRun) -> float:
        return sum(member.metric(n) for n in HANDLED)

    def wait_all_handling(self, members: Sequence[WorkerRun], timeout: float) -> list[float]:
        """Until every one of ``members`` has handled events (each has partitions)."""
        deadline = time.monotonic() + timeout
        counts = [self.handled(m) for m in members]
        while not all(counts) and time.monotonic() < deadline:
            time.sleep(0.2)
            counts = [self.handled(m) for m in members]
        assert all(counts), f"a worker got no partition: {counts}"
        return counts

    def wait_assigned(self, member: WorkerRun, timeout: float = 60.0) -> None:
        """Until ``member`` holds partitions of the raw topics (it exports their lag)."""
        raw = set(member.topics.raw())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _lag_topics(member) & raw:
                return
            time.sleep(0.25)
        raise AssertionError(f"{member.name} was given no partition:\n{member.log_tail()}")

    def wait_quiet(self, quiet_s: float = 3.0, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last, since = self.progress(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.progress()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
        raise AssertionError("the cluster never went quiet:\n" + self.owner.log_tail())

    def stop_all(self, sig: int = signal.SIGKILL) -> None:
        for m in self.alive:
            m.stop(sig)


@pytest.fixture
def cluster(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(broker_url, redis_url, run_id, tmp_path)
    yield c
    c.stop_all()


def _lag_topics(member: WorkerRun) -> set[str]:
    """The topics whose partitions ``member`` exports a lag for (the ones it was assigned)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{member.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.labels["topic"] for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "leadstream_consumer_lag_messages"}  # fmt: skip


def _send_in_background(
    run: WorkerRun, events: Sequence[synthetic.Emitted], seconds: float
) -> threading.Event:
    done = threading.Event()

    def send() -> None:
        try:
            asyncio.run(produce(events, run.broker_url, run.topics, rate=len(events) / seconds))
        finally:
            done.set()

    threading.Thread(target=send, daemon=True).start()
    return done


def _events(seed: int, leads: int) -> list[synthetic.Emitted]:
    return list(synthetic.generate(synthetic.GeneratorConfig(
        seed=seed, leads=leads, days=40, duplicate_fraction=0.03, bad_fraction=0.02)))  # fmt: skip


def _check(cluster: Cluster, events: Sequence[synthetic.Emitted], max_rescored: int) -> int:
    """The promises above; returns how many leads were scored twice (a redelivered batch)."""
    owner = cluster.owner
    valid: dict[str, set[str]] = {"lead": set(), "touchpoint": set(), "conversion": set()}
    for e in events:
        if not e.bad and e.kind in valid and isinstance(e.value, dict):
            valid[e.kind].add(str(e.value["event_id"]))
    bad = sum(1 for e in events if e.bad)
    scored = Counter(
        s["event_id"] for s in owner.read_topic(owner.topics.scored, len(valid["lead"]))
    )
    assert set(scored) == valid["lead"], "a lead was not scored"
    rescored = sum(1 for n in scored.values() if n > 1)
    assert max(scored.values()) <= 2 and rescored <= max_rescored, (rescored, max_rescored)
    # Outcomes only: not the revenue, provisional or window examples some label policies add.
    examples = [x for x in owner.read_topic(owner.topics.training, expect=1)
                if x.get("kind") is None]  # fmt: skip
    labelled = {x["lead_id"] for x in examples}
    assert labelled, "no lead was labelled"
    deadline, bundle = time.monotonic() + 30, None
    while time.monotonic() < deadline and (bundle is None or bundle.examples < len(labelled)):
        bundle = asyncio.run(_latest_model(owner))
        time.sleep(0.5)
    # SIGTERM: the owner flushes its sink and publishes what it learned before it exits.
    cluster.stop_all(signal.SIGTERM)
    client = owner.clickhouse()
    try:
        for kind, table in (("lead", "leads"), ("touchpoint", "touchpoints"),
                            ("conversion", "conversions")):  # fmt: skip
            got = [r[0] for r in client.query(
                f"SELECT event_id FROM leadstream.{table} FINAL").result_rows]  # fmt: skip
            assert len(got) == len(set(got)) and set(got) == valid[kind], table
        rows, leads = client.query(
            "SELECT count(), uniqExact(lead_id) FROM leadstream.training_examples FINAL"
        ).result_rows[0]
        dead = client.query("SELECT count() FROM leadstream.rejected_events FINAL").result_rows[0][
            0
        ]
    finally:
        client.close()
    assert rows == leads == len(labelled), "a labelled example is missing or twice in ClickHouse"
    assert bundle is not None and bundle.examples == len(labelled), "learned twice or not at all"
    assert dead == bad, "a rejected event is not a dead letter"
    return rescored


def _check_every_scorer_has_the_latest_model(cluster: Cluster) -> None:
    """Each stream worker scores with the newest published model within the reload interval."""
    owner = cluster.owner
    reload_s = owner.settings().models.reload_every_s

    async def latest() -> int:
        client = aioredis.from_url(owner.redis_url)
        try:
            return await ModelStore(client, f"t-{owner.run_id}").latest_version()
        finally:
            await client.aclose()

    version = asyncio.run(latest())
    assert version > 0, "the learner published nothing"
    time.sleep(reload_s + 1.0)
    scorers = [m for m in cluster.alive if m is not owner]
    versions = [m.metric("leadstream_model_version") for m in scorers]
    assert all(v >= version for v in versions), (version, versions)


def test_three_workers_one_killed_one_added_lose_and_double_nothing(cluster: Cluster) -> None:
    events = _events(seed=515, leads=600)
    part = len(events) * 6 // 10
    cluster.owner.start()
    first = [cluster.add_stream() for _ in range(3)]
    done = _send_in_background(cluster.owner, events[:part], seconds=8.0)
    handled_before_kill = cluster.wait_all_handling(first, timeout=30.0)
    first[1].stop(signal.SIGKILL)  # mid-stream: the sender is still sending
    fourth = cluster.add_stream()
    assert done.wait(120), "the sender did not finish"
    # The rest is sent once the fourth worker holds partitions, so that it has work.
    cluster.wait_assigned(fourth)
    done = _send_in_background(cluster.owner, events[part:], seconds=4.0)
    assert done.wait(120), "the sender did not finish"
    cluster.wait_quiet()
    assert cluster.handled(fourth) > 0, "the added worker took no partition"
    assert cluster.handled(first[0]) > handled_before_kill[0]
    _check_every_scorer_has_the_latest_model(cluster)
    # The killed worker's one uncommitted fetch (at most batch_size records) may be redone.
    batch_size = cluster.owner.settings().kafka.batch_size
    _check(cluster, events, max_rescored=batch_size)


def test_a_worker_leaving_with_sigterm_during_a_rebalance_loses_and_doubles_nothing(
    cluster: Cluster,
) -> None:
    events = _events(seed=616, leads=500)
    cluster.owner.start()
    first = [cluster.add_stream() for _ in range(2)]
    done = _send_in_background(cluster.owner, events, seconds=10.0)
    time.sleep(3.0)
    # A third worker joins (the group rebalances) and, while it does, one of the first leaves.
    joiner = threading.Thread(target=cluster.add_stream)
    joiner.start()
    time.sleep(0.3)
    assert first[0].stop(signal.SIGTERM) == 0
    joiner.join()
    assert done.wait(120), "the sender did not finish"
    cluster.wait_quiet()
    assert _check(cluster, events, max_rescored=0) == 0
