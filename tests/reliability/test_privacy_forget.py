"""`leadstream forget` and retention, on the real broker, Redis and chDB.

Promise: after ``forget`` a person's lead ids are in no ClickHouse table (dead letters
included), none of their Redis state is left, each keyed topic leadstream produces ends
with a tombstone for each of their lead ids, and the erasure is recorded without
personal data; other people's data is untouched. Retention: rows older than the
configured days disappear at the next merge.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis as syncredis

from config.settings import ClickHouseSettings, RetentionSettings
from sinks.clickhouse import ClickHouseSink, connect, migrate
from sinks.forget import Forgetter, email_hash
from sinks.retention import apply_retention
from sinks.rows import event_row
from tests.reliability._live import PII_KEY, LivePipeline, run_topics

pytestmark = pytest.mark.integration

EMAIL = "Target.Person@Example.org"


def lead(lead_id: str, email: str, n: int = 0) -> bytes:
    return orjson.dumps({
        "event_id": f"lead-{lead_id}-{n}", "event_type": "lead_created", "schema_version": 1,
        "occurred_at": "2026-02-01T10:00:00Z", "lead_id": lead_id, "channel": "email",
        "email": email, "first_name": "Tara", "last_name": "Target",
    })  # fmt: skip


def touch(lead_id: str, n: int, event_type: str = "page_view") -> bytes:
    return orjson.dumps({
        "event_id": f"touch-{lead_id}-{n}", "event_type": event_type, "schema_version": 1,
        "occurred_at": "2026-02-02T10:00:00Z", "lead_id": lead_id,
    })  # fmt: skip


def conversion(lead_id: str, stage: str) -> bytes:
    return orjson.dumps({
        "event_id": f"conv-{lead_id}-{stage}", "event_type": "stage_change", "schema_version": 1,
        "occurred_at": "2026-02-05T10:00:00Z", "lead_id": lead_id, "stage": stage,
    })  # fmt: skip


def redis_keys(live: LivePipeline) -> list[str]:
    async def scan() -> list[str]:
        return [k.decode() async for k in live.redis.scan_iter(match=f"{live.prefix}:*")]

    return list(live.run(scan()))


def test_forget_by_email_erases_the_person_everywhere(live_pipeline: LivePipeline) -> None:
    live = live_pipeline
    targets, other = ["tp-1", "tp-2"], "op-1"  # the person signed up twice
    live.handle("lead", [lead("tp-1", EMAIL), lead("tp-2", EMAIL.lower()), lead(other, "o@x.io")])
    live.handle("touchpoint", [touch(t, i) for t in (*targets, other) for i in range(3)])
    live.handle("touchpoint", [touch("tp-1", 9, "no_such_type")])  # a dead letter naming the lead
    live.handle("conversion", [conversion(t, "sql") for t in (*targets, other)])
    topics = live.settings.kafka.topics
    examples = live.read_topic(topics.training, 3)
    from streaming.pipeline import Message

    live.run(live.pipeline.learn([Message(0, i, k, orjson.dumps(v), 0.0)
                                  for i, (k, v) in enumerate(examples)]))  # fmt: skip
    before = _rows_by_lead(live)
    assert all(before[t] for t in targets) and before[other]
    assert any(t in k for k in redis_keys(live) for t in targets)

    async def send(topic: str, key: bytes, value: None) -> Any:
        return await live.producer.send_and_wait(topic, value, key=key)

    forgetter = Forgetter(
        live.clickhouse, "leadstream", live.redis, live.prefix, send,
        (topics.scored, topics.training), PII_KEY.encode(),
    )  # fmt: skip
    assert forgetter.lead_ids_for_email(" TARGET.person@example.ORG ") == targets
    erasure = live.run(forgetter.forget_email(" TARGET.person@example.ORG "))

    after = _rows_by_lead(live)
    assert not any(after[t] for t in targets), after
    assert after[other] == before[other]  # nobody else lost anything
    dead = live.query("SELECT payload FROM {db}.rejected_events")
    assert not any("tp-1" in p for (p,) in dead)
    keys = redis_keys(live)
    assert not [k for k in keys if any(k.endswith(t) or f":{t}" in k for t in targets)]
    assert not [k for k in keys if "touch-tp-" in k or "lead-tp-" in k or "conv-tp-" in k]
    assert any(other in k for k in keys)  # the other lead's state is still there
    pending = live.run(live.redis.zrange(f"{live.prefix}:pending", 0, -1))
    assert not {t.encode() for t in targets} & set(pending)
    for topic in (topics.scored, topics.training):
        last: dict[bytes | None, Any] = {}
        for key, value in live.read_topic(topic, 1):
            last[key] = value
        assert all(last[t.encode()] is None for t in targets), topic  # tombstones come last
        assert last.get(other.encode()) is not None
    assert erasure.tombstones == 4 and erasure.redis_keys_deleted >= 10
    record = live.query("SELECT * FROM {db}.erasures")
    assert len(record) == 1
    text = repr(record).lower()
    assert "target" not in text and "example.org" not in text and "tp-1" not in text
    assert email_hash(EMAIL, PII_KEY.encode()) in text


def _rows_by_lead(live: LivePipeline) -> dict[str, int]:
    out: dict[str, int] = {}
    tables = [t for (t,) in live.query(
        "SELECT DISTINCT c.table FROM system.columns c JOIN system.tables t"
        " ON t.database = c.database AND t.name = c.table"
        " WHERE c.database = 'leadstream' AND c.name = 'lead_id' AND t.engine LIKE '%MergeTree'")]  # fmt: skip
    assert {"leads", "touchpoints", "conversions", "scored_leads", "training_examples"} <= set(
        tables
    )
    for table in tables:
        for lead_id, n in live.query(f"SELECT lead_id, count() FROM {{db}}.{table} GROUP BY 1"):
            out[lead_id] = out.get(lead_id, 0) + int(n)
    for lead_id in ("tp-1", "tp-2", "op-1"):
        out.setdefault(lead_id, 0)
    return out


def test_forget_command_by_lead_id(
    broker_url: str, redis_url: str, run_id: str, tmp_path: Path
) -> None:
    """The CLI on a chDB folder it opens itself (the worker is stopped), Redis and the broker."""
    chdb = tmp_path / "chdb"
    client = connect(ClickHouseSettings(chdb_path=chdb))
    migrate(client, "leadstream")
    now = datetime.now(UTC)
    sink = ClickHouseSink("leads", client, "leadstream", threading.Lock())
    rows = [event_row("leads", {"event_id": f"e-{lid}", "event_type": "lead_created",
                                "lead_id": lid, "occurred_at": now, "channel": "email",
                                "pages_viewed": 0, "pricing_page_visits": 0, "email_opens": 0,
                                "email_clicks": 0, "demo_requested": False}, now)
            for lid in ("gone-1", "kept-1")]  # fmt: skip
    sink._insert(rows)
    client.close()
    prefix = f"cli-{run_id}"
    r = syncredis.Redis.from_url(redis_url)
    r.set(f"{prefix}:snap:gone-1", "{}")
    r.set(f"{prefix}:dedup:e-gone-1", 1)
    r.set(f"{prefix}:snap:kept-1", "{}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env.update({
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(chdb), "LEADSTREAM_REDIS__URL": redis_url,
        "LEADSTREAM_REDIS__KEY_PREFIX": prefix, "LEADSTREAM_KAFKA__BOOTSTRAP": broker_url,
        "LEADSTREAM_PII_HASH_KEY": PII_KEY, "LEADSTREAM_LOG_LEVEL": "warning",
    })  # fmt: skip
    for name, topic in run_topics(run_id).model_dump().items():
        env[f"LEADSTREAM_KAFKA__TOPICS__{name.upper()}"] = topic
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "forget", "--lead-id", "gone-1", "--yes"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "erased" in done.stderr
    assert r.exists(f"{prefix}:snap:gone-1", f"{prefix}:dedup:e-gone-1") == 0
    assert r.exists(f"{prefix}:snap:kept-1") == 1
    r.delete(f"{prefix}:snap:kept-1")
    r.close()
    client = connect(ClickHouseSettings(chdb_path=chdb))
    try:
        left = client.query("SELECT lead_id FROM leadstream.leads").result_rows
        assert left == [("kept-1",)]
        assert client.query("SELECT subject_kind FROM leadstream.erasures").result_rows == [
            ("lead_id",)
        ]
    finally:
        client.close()
    from typer.testing import CliRunner

    from cli.main import app

    bad = CliRunner().invoke(app, ["forget", "--yes"], env=env)
    assert bad.exit_code != 0 and "--email or --lead-id" in bad.output


def test_retention_from_settings_drops_expired_rows(tmp_path: Path) -> None:
    client = connect(ClickHouseSettings(chdb_path=tmp_path / "chdb"))
    try:
        migrate(client, "leadstream")
        # Migration 0008's defaults are what the default settings ask for: nothing to change.
        assert apply_retention(client, "leadstream", RetentionSettings()) == {}
        changed = apply_retention(
            client, "leadstream", RetentionSettings(events_days=30, rejected_days=0)
        )
        assert changed == {
            "leads": "toDateTime(occurred_at) + toIntervalDay(30)",
            "touchpoints": "toDateTime(occurred_at) + toIntervalDay(30)",
            "conversions": "toDateTime(occurred_at) + toIntervalDay(30)",
            "rejected_events": "kept forever",
        }
        assert apply_retention(
            client, "leadstream", RetentionSettings(events_days=30, rejected_days=0)
        ) == {}  # fmt: skip
        now = datetime.now(UTC)
        sink = ClickHouseSink("leads", client, "leadstream", threading.Lock())
        sink._insert([
            event_row("leads", {"event_id": f"e{age}", "event_type": "lead_created",
                                "lead_id": f"L{age}", "occurred_at": now - timedelta(days=age),
                                "channel": "email", "pages_viewed": 0, "pricing_page_visits": 0,
                                "email_opens": 0, "email_clicks": 0, "demo_requested": False}, now)
            for age in (45, 31, 29, 1)
        ])  # fmt: skip
        client.command("OPTIMIZE TABLE leadstream.leads FINAL")
        left = sorted(
            r[0] for r in client.query("SELECT lead_id FROM leadstream.leads").result_rows
        )
        assert left == ["L1", "L29"]
    finally:
        client.close()
