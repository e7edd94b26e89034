"""The learner killed and restarted: it resumes from its last snapshot and the committed offsets.

Three runs of the real worker on the real broker, Redis and chDB. Run 1 stops
cleanly (its snapshot is taken at shutdown); run 2 learns more and is killed
(SIGKILL) before any snapshot (the snapshot timer is set to an hour); run 3 starts
from run 1's snapshot. Redelivered examples are never learned twice, and exactly
what run 2 learned after the last snapshot is lost. (The default suite runs the same
contract in process: tests/learning/test_learner_records.py.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from online_models.bundle import ModelBundle, ModelStore
from streaming import synthetic
from tests.integration._worker import WorkerRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three worker runs: ~30-50 s
LEARNED = "leadstream_examples_learned_total"


@pytest.fixture
def run(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[WorkerRun]:
    worker = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    worker.extra_env["LEADSTREAM_MODELS__PUBLISH_EVERY_S"] = "3600"  # snapshots only at shutdown
    worker.extra_env["LEADSTREAM_MODELS__HORIZON_DAYS"] = "10"
    yield worker
    if worker.process is not None and worker.process.poll() is None:
        worker.stop(signal.SIGKILL)


def learn_some(run: WorkerRun, seed: int, at_least: int) -> int:
    """Send a generated stream, wait until the learner is quiet; returns what this run learned."""
    events = synthetic.generate(synthetic.GeneratorConfig(seed=seed, leads=150, days=30))
    run.send(events)
    run.wait_metric(LEARNED, at_least, timeout=90)
    last, since = run.metric(LEARNED), time.monotonic()
    while time.monotonic() - since < 2.0:
        time.sleep(0.25)
        now = run.metric(LEARNED)
        if now != last:
            last, since = now, time.monotonic()
    return int(last)


def snapshot(run: WorkerRun) -> ModelBundle | None:
    async def load() -> ModelBundle | None:
        client = aioredis.from_url(run.redis_url)
        try:
            return await ModelStore(client, f"t-{run.run_id}").load()
        finally:
            await client.aclose()

    return asyncio.run(load())


def test_a_killed_learner_resumes_from_its_snapshot_and_learns_nothing_twice(
    run: WorkerRun,
) -> None:
    run.start()
    first = learn_some(run, seed=31, at_least=50)
    assert run.stop() == 0
    saved = snapshot(run)
    assert saved is not None and saved.examples == first

    run.start()
    second = learn_some(run, seed=32, at_least=30)
    assert snapshot(run).version == saved.version  # type: ignore[union-attr]  # no snapshot since
    run.stop(signal.SIGKILL)

    run.start()
    third = learn_some(run, seed=33, at_least=30)
    assert run.stop() == 0
    final = snapshot(run)
    assert final is not None
    # Resumed from run 1's snapshot: run 2's learning (after that snapshot) is lost, no more.
    assert final.examples == first + third
    # Every labelled lead was learned exactly once over the three runs, replays included.
    client = run.clickhouse()
    try:
        rows, leads = client.query(
            "SELECT count(), uniqExact(lead_id) FROM leadstream.training_examples"
        ).result_rows[0]
    finally:
        client.close()
    assert rows == leads == first + second + third
