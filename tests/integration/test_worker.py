"""The worker end to end on the real broker, Redis and chDB (and Prometheus for /metrics)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cli._procs import scrape_targets_dir
from cli._service_config import add_scrape_target, remove_scrape_target
from config.settings import Settings
from streaming import synthetic
from streaming.events import EVENT_MODELS
from tests.integration._worker import WorkerRun, handled, wait_handled, wait_quiet

pytestmark = pytest.mark.integration


@pytest.fixture
def run(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[WorkerRun]:
    worker = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    yield worker
    if worker.process is not None and worker.process.poll() is None:
        worker.stop()


def generated(leads: int, seed: int, **kw: Any) -> list[synthetic.Emitted]:
    return list(
        synthetic.generate(synthetic.GeneratorConfig(seed=seed, leads=leads, days=30, **kw))
    )


def valid_unique(events: list[synthetic.Emitted]) -> dict[str, set[str]]:
    """Event ids of the events that should land, by kind (bad ones and re-sends excluded)."""
    out: dict[str, set[str]] = {k: set() for k in EVENT_MODELS}
    for e in events:
        if not e.bad:
            assert isinstance(e.value, dict)
            out[e.kind].add(str(e.value["event_id"]))
    return out


def table_counts(run: WorkerRun) -> dict[str, tuple[int, int]]:
    """(distinct event ids, rows read with FINAL) per table."""
    client = run.clickhouse()
    out = {}
    for table in ("leads", "touchpoints", "conversions", "spend"):
        ids, rows = client.query(
            f"SELECT uniqExact(event_id), count() FROM leadstream.{table} FINAL"
        ).result_rows[0]
        out[table] = (int(ids), int(rows))
    return out


def assert_each_event_once(
    run: WorkerRun, expected: dict[str, set[str]]
) -> dict[str, tuple[int, int]]:
    """Every valid lead, touchpoint and conversion is one row in ClickHouse; returns all counts."""
    counts = table_counts(run)
    for kind, table in (
        ("lead", "leads"),
        ("touchpoint", "touchpoints"),
        ("conversion", "conversions"),
    ):
        assert counts[table] == (len(expected[kind]), len(expected[kind])), table
    return counts


def test_every_valid_lead_is_scored_and_stored_once_even_when_sent_twice(run: WorkerRun) -> None:
    events = generated(400, seed=11, duplicate_fraction=0.05)
    expected = valid_unique(events)
    lead_ids = {str(e.value["lead_id"]) for e in events if e.kind == "lead" and not e.bad}  # type: ignore[index]
    run.start()
    sent = run.send(events)
    sent_again = run.send(events)  # the whole stream a second time: a replay
    wait_handled(run, sum(sent.values()) + sum(sent_again.values()))
    scored = run.read_topic(run.topics.scored, expect=len(expected["lead"]))
    assert {s["lead_id"] for s in scored} == lead_ids
    for s in scored:
        assert 0.0 <= s["score"] <= 1.0
        # A lead scored before the model learned anything says so (cold start).
        assert s["band"] in "ABCD" if not s["cold_start"] else s["band"] == "unscored"
        assert {"expected_value", "reasons", "model_version", "scored_at", "event_id"} <= set(s)
    # Each lead event was scored once: the replay and in-stream duplicates were dropped.
    assert len(scored) == len(expected["lead"])
    run.stop()
    counts = assert_each_event_once(run, expected)
    spend_days = {
        (e.value["campaign_id"], e.value["date"]) for e in events if e.kind == "spend" and not e.bad
    }  # type: ignore[index]
    assert counts["spend"][1] == len(spend_days)


def test_bad_events_go_to_deadletter_with_reasons_and_good_ones_pass(run: WorkerRun) -> None:
    good = [e for e in generated(30, seed=5) if e.kind == "lead"][:20]
    base = dict(good[0].value)  # type: ignore[arg-type]
    bad_payloads: list[tuple[str, bytes, str]] = [
        ("lead", b"{this is not json", "invalid_json"),
        ("lead", b"", "empty"),
        ("lead", b"[1,2,3]", "not_an_object"),
        (
            "lead",
            orjson.dumps({**base, "event_id": "bad-1", "pages_viewed": "lots"}),
            "invalid_field",
        ),
        (
            "lead",
            orjson.dumps({**base, "event_id": "bad-2", "event_type": "lead_exploded"}),
            "unknown_event_type",
        ),
        (
            "lead",
            orjson.dumps({k: v for k, v in base.items() if k != "channel"} | {"event_id": "bad-3"}),
            "missing_field",
        ),
        (
            "conversion",
            orjson.dumps(
                {
                    "event_id": "bad-4",
                    "event_type": "stage_change",
                    "schema_version": 1,
                    "occurred_at": "2026-01-05T10:00:00Z",
                    "lead_id": "L1",
                    "stage": "closed",
                }
            ),
            "invalid_field",
        ),
        (
            "spend",
            orjson.dumps(
                {
                    "event_id": "bad-5",
                    "event_type": "spend",
                    "schema_version": 1,
                    "occurred_at": "2026-01-05T10:00:00Z",
                    "campaign_id": "c",
                    "channel": "email",
                    "date": "2026-01-05",
                    "amount": "-5",
                    "currency": "USD",
                }
            ),
            "invalid_field",
        ),
        ("touchpoint", b"\xff\xfe\xfd", "invalid_json"),
        ("lead", b'{"a":' * 3000 + b"1" + b"}" * 3000, "invalid_json"),
    ]
    mixed = [synthetic.Emitted(kind=k, key="bad", value=v, bad=True) for k, v, _ in bad_payloads]  # type: ignore[arg-type]
    run.start()
    run.send(mixed[:5] + good + mixed[5:])
    dead = run.read_topic(run.topics.deadletter, expect=len(bad_payloads))
    assert len(dead) == len(bad_payloads)
    codes = Counter(d["reason_code"] for d in dead)
    assert codes == Counter(code for _, _, code in bad_payloads)
    assert all(d["reason"] and d["source_topic"].startswith(run.run_id) for d in dead)
    reasons = " | ".join(d["reason"] for d in dead)
    assert "stage 'closed' is not one of mql, sql, opportunity, won, lost" in reasons
    assert "event_type 'lead_exploded' is not one of" in reasons
    scored = run.read_topic(run.topics.scored, expect=len(good))
    assert {s["lead_id"] for s in scored} == {e.value["lead_id"] for e in good}  # type: ignore[index]
    assert run.process is not None and run.process.poll() is None  # still running


def _prometheus(prometheus_url: str, query: str, by: str = "") -> dict[str, float]:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        result = json.load(r)["data"]["result"]
    return {r["metric"].get(by, ""): float(r["value"][1]) for r in result}


def test_metrics_scraped_by_prometheus_show_the_counts_sent(
    run: WorkerRun, prometheus_url: str, services_settings: Settings
) -> None:
    events = [e for e in generated(150, seed=3) if e.kind in ("lead", "touchpoint")]
    targets = scrape_targets_dir(services_settings.services.run_dir)
    add_scrape_target(targets, run.run_id, run.metrics_port, labels={"run": run.run_id})
    try:
        run.start()
        sent = run.send(events)
        wait_handled(run, sum(sent.values()))
        query = f'sum by (topic) (leadstream_events_in_total{{run="{run.run_id}"}})'
        want = {
            run.topics.leads: float(sent["lead"]),
            run.topics.touchpoints: float(sent["touchpoint"]),
        }
        deadline = time.monotonic() + 45
        seen: dict[str, float] = {}
        while time.monotonic() < deadline and seen != want:
            time.sleep(1)
            seen = _prometheus(prometheus_url, query, by="topic")
        assert seen == want
        scored = _prometheus(prometheus_url, f'leadstream_leads_scored_total{{run="{run.run_id}"}}')
        assert list(scored.values()) == [float(sent["lead"])]
        # Names, types and help texts follow Prometheus conventions on a real scrape.
        with urllib.request.urlopen(f"http://127.0.0.1:{run.metrics_port}/metrics", timeout=5) as r:
            exposition = r.read()
        check = subprocess.run(
            ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=30
        )
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    finally:
        remove_scrape_target(targets, run.run_id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_mid_stream_loses_nothing_and_duplicates_nothing(run: WorkerRun, sig: int) -> None:
    events = generated(600, seed=21)
    expected = valid_unique(events)
    half = len(events) // 2
    run.start()
    first = run.send(events[:half])
    # Stop while the first half is still being worked on.
    deadline = time.monotonic() + 60
    while handled(run) < sum(first.values()) // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.stop(sig)
    run.start()
    second = run.send(events[half:])
    wait_handled(run, sum(second.values()))  # counters restart at zero in the new process
    wait_quiet(run)
    scored = run.read_topic(run.topics.scored, expect=len(expected["lead"]))
    assert {s["event_id"] for s in scored} == expected["lead"]  # every lead scored, maybe twice
    run.stop()
    assert_each_event_once(run, expected)


def test_sigterm_publishes_what_was_learned_since_the_last_snapshot(run: WorkerRun) -> None:
    import redis.asyncio as aioredis

    from online_models.bundle import ModelStore

    run.extra_env["LEADSTREAM_MODELS__PUBLISH_EVERY_S"] = "3600"  # the timer never fires
    run.extra_env["LEADSTREAM_MODELS__HORIZON_DAYS"] = "10"
    events = generated(300, seed=8)
    run.start()
    run.send(events)
    run.wait_metric("leadstream_training_examples_total", 50)
    wait_quiet(run)
    assert run.stop() == 0

    async def latest() -> object:
        client = aioredis.from_url(run.redis_url)
        try:
            return await ModelStore(client, f"t-{run.run_id}").load()
        finally:
            await client.aclose()

    bundle = asyncio.run(latest())
    assert bundle is not None and bundle.examples >= 50  # type: ignore[attr-defined]
