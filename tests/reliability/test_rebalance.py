"""A rebalance while events flow: a second member joins the worker's group and leaves.

Promise: the worker hands its partitions over only after the batch in hand is durable and
committed, and takes them back from the committed offsets, so nothing is lost and nothing
is done twice: every valid event is in ClickHouse exactly once and every lead is scored
exactly once on ``leads.scored`` (no replay happened, so not even a repeat).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from streaming import synthetic
from streaming.producer import bootstrap_servers, produce
from tests.integration._worker import WorkerRun
from tests.reliability.test_faults import check_exactly_once, wait_quiet

pytestmark = pytest.mark.integration


async def _intrude(run: WorkerRun, stay_s: float) -> int:
    """Join the worker's group, take what the broker gives for ``stay_s``, commit nothing."""
    raw = list(run.topics.raw())
    consumer = AIOKafkaConsumer(
        *raw, bootstrap_servers=bootstrap_servers(run.broker_url),
        group_id=f"ls-{run.run_id}.stream", enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=2000, heartbeat_interval_ms=500,
    )  # fmt: skip
    await consumer.start()
    taken = 0
    deadline = time.monotonic() + stay_s
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                taken += len(records)
    finally:
        await consumer.stop()  # leaves the group: a second rebalance
    return taken


def test_a_member_joining_and_leaving_loses_and_doubles_nothing(run: WorkerRun) -> None:
    events = list(synthetic.generate(synthetic.GeneratorConfig(
        seed=303, leads=300, days=30, duplicate_fraction=0.03, bad_fraction=0.02)))  # fmt: skip
    done = threading.Event()

    def send() -> None:
        try:
            asyncio.run(produce(events, run.broker_url, run.topics, rate=len(events) / 8.0))
        finally:
            done.set()

    run.start()
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(2.0)  # the worker is consuming
    taken = asyncio.run(_intrude(run, stay_s=3.0))
    assert done.wait(120), "the sender did not finish"
    sender.join()
    wait_quiet(run)
    # The intruder held partitions for a while: it took records the worker then re-read.
    assert taken > 0
    leads = {str(e.value["event_id"]) for e in events
             if e.kind == "lead" and not e.bad and isinstance(e.value, dict)}  # fmt: skip
    scored = Counter(s["event_id"] for s in run.read_topic(run.topics.scored, expect=len(leads)))
    assert set(scored) == leads
    assert max(scored.values()) == 1, "a lead was scored twice across the rebalance"
    check_exactly_once(run, events)
