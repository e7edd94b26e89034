"""The label join in the pipeline, on real Redis and chDB, with produced messages captured.

Topics are consumed independently, so outcomes can overtake their lead; labels
must still be right, come from the features known when the lead was scored,
and be emitted once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from config.settings import Settings
from sinks.clickhouse import connect, migrate
from streaming.pipeline import Message, Pipeline
from streaming.runtime import build_pipeline
from tests.learning._rig import Captured

pytestmark = pytest.mark.integration
DAY = 86400.0


@asynccontextmanager
async def _opened(
    redis_url: str, prefix: str, tmp_path: Path, **models: Any
) -> AsyncIterator[tuple[Pipeline, Captured, Any]]:
    """A pipeline on real Redis and chDB (horizon 30 days, target sql, the horizon label
    policy unless ``models`` says otherwise), sends captured."""
    settings = Settings(
        redis={"url": redis_url, "key_prefix": prefix},
        clickhouse={"chdb_path": tmp_path / "chdb"},
        models={"horizon_days": 30, "target_stage": "sql", "label_policy": "horizon", **models},
        kafka={"partitions": 1},
        pii_hash_key="label-test-key-0123456789",
    )
    client = aioredis.from_url(redis_url)
    ch = connect(settings.clickhouse)
    migrate(ch, settings.clickhouse.database)
    sent = Captured()
    try:
        yield build_pipeline(settings, client, ch, sent), sent, ch
    finally:
        await client.aclose()
        ch.close()  # chDB serves one data directory per process at a time


@pytest.fixture
async def setup(
    redis_url: str, run_id: str, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, Captured, Any]]:
    async with _opened(redis_url, f"lbl-{run_id}", tmp_path) as opened:
        yield opened


@pytest.fixture
async def fake_negatives(
    redis_url: str, run_id: str, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, Captured, Any]]:
    async with _opened(redis_url, f"fn-{run_id}", tmp_path, label_policy="fake_negative") as opened:
        yield opened


_offsets = iter(range(10**9))


def msg(event: dict[str, Any]) -> Message:
    return Message(0, next(_offsets), None, orjson.dumps(event), 0.0)


def lead(lead_id: str, day: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"lead-{lead_id}-{day}",
        "event_type": "lead_created",
        "schema_version": 1,
        "occurred_at": _iso(day),
        "lead_id": lead_id,
        "channel": "email",
        **extra,
    }


def conversion(lead_id: str, day: float, stage: str) -> dict[str, Any]:
    return {
        "event_id": f"conv-{lead_id}-{stage}",
        "event_type": "stage_change",
        "schema_version": 1,
        "occurred_at": _iso(day),
        "lead_id": lead_id,
        "stage": stage,
    }


def touch(lead_id: str, day: float, n: int) -> dict[str, Any]:
    return {
        "event_id": f"touch-{lead_id}-{n}",
        "event_type": "demo_request",
        "schema_version": 1,
        "occurred_at": _iso(day),
        "lead_id": lead_id,
    }


def _iso(day: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(1_767_225_600 + day * DAY, tz=UTC).isoformat()  # 2026-01-01 + day


async def test_conversion_after_the_lead_gives_one_positive(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("a", 0))])
    await pipeline.handle_raw("conversion", [msg(conversion("a", 3, "mql"))])
    assert sent.on(pipeline.topics.training) == []  # mql is below the target stage
    await pipeline.handle_raw("conversion", [msg(conversion("a", 6, "sql"))])
    await pipeline.handle_raw("conversion", [msg(conversion("a", 20, "won"))])  # already labelled
    examples = sent.on(pipeline.topics.training)
    assert [(e["lead_id"], e["label"]) for e in examples] == [("a", 1)]


async def test_conversion_that_overtakes_its_lead_is_parked_then_labelled(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("conversion", [msg(conversion("b", 5, "sql"))])
    assert sent.on(pipeline.topics.training) == []
    await pipeline.handle_raw("lead", [msg(lead("b", 0))])
    examples = sent.on(pipeline.topics.training)
    assert [(e["lead_id"], e["label"]) for e in examples] == [("b", 1)]
    # The sweep, later, does not label it again.
    await pipeline.handle_raw("conversion", [msg(conversion("z", 200, "mql"))])
    await pipeline.sweep()
    assert [e["lead_id"] for e in sent.on(pipeline.topics.training)] == ["b"]


async def test_silence_past_the_horizon_is_a_negative_measured_on_conversion_time(
    setup: Any,
) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("c", 0)), msg(lead("d", 25))])
    # Leads and touchpoints far in the future do not move the conversion watermark.
    await pipeline.handle_raw("lead", [msg(lead("e", 100))])
    assert await pipeline.sweep() == 0
    await pipeline.handle_raw("conversion", [msg(conversion("x", 40, "mql"))])
    assert await pipeline.sweep() == 1  # c is 40 days old on the conversion stream; d is not
    assert [(e["lead_id"], e["label"]) for e in sent.on(pipeline.topics.training)] == [("c", 0)]
    # A conversion after the horizon does not turn it positive.
    await pipeline.handle_raw("conversion", [msg(conversion("c", 45, "sql"))])
    assert [(e["lead_id"], e["label"]) for e in sent.on(pipeline.topics.training)] == [("c", 0)]


async def test_lost_is_an_immediate_negative(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("f", 0))])
    await pipeline.handle_raw("conversion", [msg(conversion("f", 4, "lost"))])
    assert [(e["lead_id"], e["label"]) for e in sent.on(pipeline.topics.training)] == [("f", 0)]


async def test_examples_carry_the_features_known_when_scored_not_later_ones(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("touchpoint", [msg(touch("g", 0.1, 1))])
    await pipeline.handle_raw("lead", [msg(lead("g", 0.2, pages_viewed=2))])
    scored = sent.on(pipeline.topics.scored)[-1]
    # Engagement that happens after scoring must not reach the training example.
    await pipeline.handle_raw("touchpoint", [msg(touch("g", 1, n)) for n in range(2, 9)])
    await pipeline.handle_raw("conversion", [msg(conversion("g", 3, "sql"))])
    (example,) = sent.on(pipeline.topics.training)
    assert example["features"]["eng_demo_request"] == pytest.approx(0.693, abs=1e-3)  # log1p(1)
    assert example["score"] == pytest.approx(scored["score"], abs=1e-6)


async def test_the_learner_learns_each_lead_once_and_publishes(setup: Any) -> None:
    pipeline, sent, ch = setup
    await pipeline.handle_raw(
        "lead", [msg(lead(f"h{i}", 0, pages_viewed=i % 5)) for i in range(20)]
    )
    await pipeline.handle_raw(
        "conversion",
        [msg(conversion(f"h{i}", 3, "sql" if i % 5 > 2 else "lost")) for i in range(20)],
    )
    examples = [m for m in sent.messages if m[0] == pipeline.topics.training]
    assert len(examples) == 20
    replayed = [Message(0, i, k, orjson.dumps(v), 0.0) for i, (_, k, v) in enumerate(examples)]
    await pipeline.learn(replayed)
    await pipeline.learn(replayed)  # a redelivery: nothing is learned twice
    assert pipeline.learning is not None and pipeline.learning.examples == 20
    version = await pipeline.publish()
    assert version is not None and await pipeline.refresh_model()
    assert pipeline.model.version == version and pipeline.model.examples == 20
    rows = ch.query(
        "SELECT count(), sum(label) FROM leadstream.training_examples FINAL"
    ).result_rows[0]
    assert tuple(rows) == (20, 8)


async def test_an_update_after_the_label_does_not_label_the_lead_again(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("u", 0))])
    await pipeline.handle_raw("conversion", [msg(conversion("u", 3, "sql"))])
    updated = {
        **lead("u", 5, pages_viewed=9),
        "event_type": "lead_updated",
        "event_id": "lead-u-upd",
    }
    await pipeline.handle_raw("lead", [msg(updated)])
    assert len(sent.on(pipeline.topics.scored)) == 2  # the update is scored for sales
    await pipeline.handle_raw("conversion", [msg(conversion("x", 200, "mql"))])
    await pipeline.sweep()
    assert [(e["lead_id"], e["label"]) for e in sent.on(pipeline.topics.training)] == [("u", 1)]


async def test_won_revenue_reaches_the_expected_value_once(setup: Any) -> None:
    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("r", 0)), msg(lead("s", 0))])
    await pipeline.handle_raw(
        "conversion", [msg(conversion("r", 3, "sql")), msg(conversion("s", 3, "sql"))]
    )
    won = [
        {**conversion(lid, 30, "won"), "revenue": str(amount), "currency": "USD"}
        for lid, amount in (("r", 4000), ("s", 8000))
    ]
    await pipeline.handle_raw("conversion", [msg(w) for w in won])
    produced = [
        Message(0, i, k, orjson.dumps(v), 0.0)
        for i, (t, k, v) in enumerate(sent.messages)
        if t == pipeline.topics.training
    ]
    assert sum(1 for m in produced if b'"kind":"revenue"' in m.value) == 2
    await pipeline.learn(produced)
    await pipeline.learn(produced)  # redelivered: counted once
    await pipeline.publish()
    await pipeline.refresh_model()
    assert pipeline.model.expected_revenue() == pytest.approx(6000.0)
    assert pipeline.model.examples == 2  # the revenue examples are not labels
    await pipeline.handle_raw("lead", [msg(lead("t", 40))])
    scored = sent.on(pipeline.topics.scored)[-1]
    assert scored["expected_value"] == pytest.approx(scored["score"] * 6000.0, abs=0.01)


async def test_fake_negatives_learn_each_lead_as_a_negative_when_scored(
    fake_negatives: Any,
) -> None:
    from online_models.bundle import from_fake_negatives
    from online_models.features import lead_features

    pipeline, sent, ch = fake_negatives
    await pipeline.handle_raw("lead", [msg(lead("a", 0, pages_viewed=3)), msg(lead("b", 1))])
    # Each scored lead is a negative at once, before any outcome.
    training = sent.on(pipeline.topics.training)
    assert [(e["lead_id"], e["label"], e.get("kind")) for e in training] == [
        ("a", 0, "provisional"), ("b", 0, "provisional")]  # fmt: skip
    q = pipeline.model.scorer.predict_proba_one(lead_features(lead("a", 0, pages_viewed=3), {}))
    scored = sent.on(pipeline.topics.scored)[0]
    assert scored["score"] == pytest.approx(from_fake_negatives(q[True]), abs=1e-6)
    await pipeline.handle_raw("conversion", [msg(conversion("a", 5, "sql"))])
    await pipeline.handle_raw("conversion", [msg(conversion("x", 40, "mql"))])
    assert await pipeline.sweep() == 1  # b: no conversion within the horizon
    training = sent.on(pipeline.topics.training)
    assert [(e["lead_id"], e["label"], e.get("kind")) for e in training[2:]] == [
        ("a", 1, None), ("b", 0, None)]  # fmt: skip
    replayed = [Message(0, i, None, orjson.dumps(v), 0.0) for i, v in enumerate(training)]
    await pipeline.learn(replayed)
    await pipeline.learn(replayed)  # a redelivery: nothing is learned twice
    bundle = pipeline.learning
    assert bundle is not None and bundle.examples == 2 and bundle.positives == 1
    # Two negatives when scored and a's conversion; b's horizon negative is only scored.
    assert bundle.scorer.n_learned == 3
    assert bundle.candidates[bundle.champion].metrics.report("overall")["examples"] == 2
    rows = ch.query(
        "SELECT lead_id, label FROM leadstream.training_examples FINAL ORDER BY lead_id"
    ).result_rows
    assert [tuple(r) for r in rows] == [("a", 1), ("b", 0)]  # outcomes only


async def test_a_challenger_started_later_learns_the_negatives_it_missed(
    fake_negatives: Any,
) -> None:
    pipeline, sent, _ = fake_negatives
    clock = iter(range(1_800_000_000, 1_900_000_000, 60))
    pipeline.clock = lambda: float(next(clock))  # each step a minute later

    async def learn_new(seen: list[int]) -> None:
        training = sent.on(pipeline.topics.training)
        fresh = training[seen[0] :]
        seen[0] = len(training)
        await pipeline.learn([Message(0, i, None, orjson.dumps(v), 0.0) for i, v in enumerate(fresh)])

    seen = [0]
    await pipeline.handle_raw("lead", [msg(lead("d", 0))])  # scored before the challenger
    await learn_new(seen)
    bundle = pipeline.learning
    assert bundle is not None
    bundle.add_challenger("logistic:optimizer=sgd")
    champion, challenger = bundle.scorer, bundle.candidates["logistic:optimizer=sgd"].model
    assert (champion.n_learned, challenger.n_learned) == (1, 0)
    await pipeline.handle_raw("lead", [msg(lead("e", 1))])  # scored after: both learn it
    await learn_new(seen)
    assert (champion.n_learned, challenger.n_learned) == (2, 1)
    await pipeline.handle_raw(
        "conversion", [msg(conversion("d", 2, "lost")), msg(conversion("e", 2, "lost"))]
    )
    await learn_new(seen)
    # d's negative: the champion learned it when d was scored, the challenger now;
    # e's negative: both learned it when e was scored.
    assert (champion.n_learned, challenger.n_learned) == (2, 2)
    assert bundle.examples == 2


async def test_a_lead_scored_before_any_learning_says_so(setup: Any) -> None:
    """Cold start: the prior is not a score; the record says so and its band does not rank."""
    from online_models.lead_scorer import LeadScorer

    pipeline, sent, _ = setup
    await pipeline.handle_raw("lead", [msg(lead("cold", 1))])
    (record,) = sent.on(pipeline.topics.scored)
    assert (record["cold_start"], record["band"], record["currency"]) == (True, "unscored", "USD")
    scorer = LeadScorer()
    scorer.learn_one({"pages_viewed": 3.0}, True)
    pipeline.model.scorer = scorer
    await pipeline.handle_raw("lead", [msg(lead("warm", 2))])
    warm = sent.on(pipeline.topics.scored)[-1]
    assert warm["cold_start"] is False and warm["band"] in "ABCD"
