"""What the worker publishes on leads.scored: reasons that add up to the logit, or none.

The pipeline the worker runs handles real lead events on real Redis and chDB; the
produced messages are captured. Each record carries its top reasons plus
``intercept``, ``unlisted_contribution`` and ``logit``, so that anyone reading the
topic can check ``intercept + Σ reasons + unlisted_contribution == logit`` and
``sigmoid(logit) == score``.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from config.settings import Settings
from online_models.bundle import reason
from online_models.features import lead_features
from online_models.lead_scorer import Contribution
from sinks.clickhouse import connect, migrate
from streaming import synthetic
from streaming.pipeline import Message
from streaming.runtime import build_pipeline

pytestmark = pytest.mark.integration

LEADS = 120


class Captured:
    """A sender that records messages and delivers them at once."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.messages.append((topic, orjson.loads(value)))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _to_score() -> list[dict[str, Any]]:
    """Lead events (created and updated) to score."""
    cfg = synthetic.GeneratorConfig(seed=21, leads=LEADS, days=10)
    return [
        e.value for e in synthetic.generate(cfg) if e.kind == "lead" and isinstance(e.value, dict)
    ]


def _labelled() -> list[tuple[dict[str, Any], bool]]:
    """Leads of another seed, labelled from their true propensities, to train on."""
    truth: dict[str, float] = {}
    cfg = synthetic.GeneratorConfig(seed=22, leads=3000, days=30)
    train = synthetic.generate(cfg, truth=lambda t: truth.__setitem__(t.lead_id, t.propensity))
    rng = random.Random(4)
    return [
        (e.value, rng.random() < truth[e.value["lead_id"]])
        for e in train
        if e.kind == "lead" and isinstance(e.value, dict)
    ]


@pytest.fixture
async def scored(redis_url: str, run_id: str, tmp_path: Path) -> AsyncIterator[Any]:
    """``score(top_reasons, explain)`` -> the leads.scored records for the same lead events."""
    to_score, labelled = _to_score(), _labelled()
    client = aioredis.from_url(redis_url)
    base = Settings(
        redis={"url": redis_url},
        clickhouse={"chdb_path": tmp_path / "chdb"},
        kafka={"partitions": 1},
        pii_hash_key="explain-test-key-0123456789",
    )
    ch = connect(base.clickhouse)
    migrate(ch, base.clickhouse.database)
    runs = iter(range(100))

    async def score(top_reasons: int, explain: bool) -> list[dict[str, Any]]:
        settings = base.model_copy(
            update={"models": base.models.model_copy(
                update={"top_reasons": top_reasons, "explain": explain})}
        )  # fmt: skip
        sent = Captured()
        pipeline = build_pipeline(
            settings, client, ch, sent, key_prefix=f"xp-{run_id}-{next(runs)}"
        )
        model = pipeline.new_bundle()
        for lead, label in labelled:
            model.scorer.learn_one(lead_features(lead, {}), label)
        pipeline.model = model
        messages = [
            Message(0, i, str(v["lead_id"]).encode(), orjson.dumps(v), 0.0)
            for i, v in enumerate(to_score)
        ]
        await pipeline.handle_raw("lead", messages)
        return [v for topic, v in sent.messages if topic == pipeline.topics.scored]

    score.clickhouse = (ch, base.clickhouse.database)  # type: ignore[attr-defined]  # for the row test
    yield score
    await client.aclose()
    ch.close()  # chDB serves one data directory per process at a time


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


async def test_published_reasons_intercept_and_rest_add_up_to_the_logit(scored: Any) -> None:
    records = await scored(5, True)
    assert len(records) == len(_to_score()) >= LEADS
    unlisted = 0
    for r in records:
        reasons = r["reasons"]
        assert len(reasons) == 5
        sizes = [abs(x["contribution"]) for x in reasons]
        assert sizes == sorted(sizes, reverse=True)
        assert all(x["text"] and x["feature"] for x in reasons)
        total = (
            r["intercept"] + sum(x["contribution"] for x in reasons) + r["unlisted_contribution"]
        )
        # Rounding only: 4 decimals per reason, 6 for the other terms.
        assert total == pytest.approx(r["logit"], abs=5 * 5e-5 + 3e-6)
        p = r["score"]
        assert r["logit"] == pytest.approx(_logit(p), abs=1e-6 / (p * (1 - p)) + 1e-6)
        unlisted += abs(r["unlisted_contribution"]) > 1e-3
    assert unlisted > len(records) // 2  # the rest is a real share of the logit, not a zero


async def test_reasons_read_as_bundle_reason_writes_them(scored: Any) -> None:
    records = await scored(8, True)
    raw = {v["event_id"]: v for v in _to_score()}
    checked = 0
    for r in records:
        for x in r["reasons"]:
            if x["contribution"] == 0.0:
                continue  # the sign was lost to rounding
            c = Contribution(x["feature"], x["value"], x["contribution"])
            assert x == reason(c, raw[r["event_id"]])
            checked += 1
    assert checked > 7 * len(records)


async def test_with_every_contribution_published_nothing_is_left_unlisted(scored: Any) -> None:
    records = await scored(50, True)
    for r in records:
        assert r["unlisted_contribution"] == pytest.approx(0.0, abs=2e-6)
        total = r["intercept"] + sum(x["contribution"] for x in r["reasons"])
        assert total == pytest.approx(r["logit"], abs=len(r["reasons"]) * 5e-5 + 3e-6)
        features = {x["feature"] for x in r["reasons"]}
        assert "channel=" + r["channel"] in features and "pages_viewed" in features


async def test_explanations_off_gives_the_same_scores_without_reasons(scored: Any) -> None:
    on = {r["event_id"]: r for r in await scored(5, True)}
    off = await scored(5, False)
    assert len(off) == len(on) == len(_to_score())
    for r in off:
        assert r["reasons"] == [] and r["intercept"] is None and r["logit"] is None
        assert r["score"] == on[r["event_id"]]["score"]
        assert r["band"] == on[r["event_id"]]["band"]


async def test_the_scored_leads_row_stores_the_reasons_the_message_carries(scored: Any) -> None:
    # The reasons are encoded once, for the message and the row alike.
    records = await scored(5, True)
    ch, database = scored.clickhouse
    rows = dict(ch.query(f"SELECT event_id, reasons FROM {database}.scored_leads").result_rows)
    assert len(rows) == len(records)
    for r in records:
        assert orjson.loads(rows[r["event_id"]]) == r["reasons"]
        assert rows[r["event_id"]].encode() == orjson.dumps(r["reasons"])
