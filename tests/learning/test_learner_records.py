"""The learner on real Redis and chDB: revenue per lead, metrics, promotions and drift recorded."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from online_models.bundle import value_band
from online_models.features import lead_features
from tests.learning._rig import as_messages

pytestmark = pytest.mark.integration
DAY = 86400.0


def _iso(day: float) -> str:
    return datetime.fromtimestamp(1_767_225_600 + day * DAY, tz=UTC).isoformat()


def lead(lead_id: str, day: float, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"lead-{lead_id}-{day}", "event_type": "lead_created",
            "schema_version": 1, "occurred_at": _iso(day), "lead_id": lead_id,
            "channel": "email", **extra}  # fmt: skip


def conversion(lead_id: str, day: float, stage: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"conv-{lead_id}-{stage}", "event_type": "stage_change",
            "schema_version": 1, "occurred_at": _iso(day), "lead_id": lead_id, "stage": stage,
            **extra}  # fmt: skip


def examples(n: int, seed: int, flip_at: int | None = None) -> list[dict[str, Any]]:
    """Labelled examples as the label join emits them; the concept reverses at ``flip_at``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pricing, size = rng.randint(0, 4), rng.choice([5, 60, 700, 8000])
        x = lead_features({"channel": "email", "pricing_page_visits": pricing,
                           "company_size": size}, {})  # fmt: skip
        sign = -1 if flip_at is not None and i >= flip_at else 1
        logit = -1.6 + sign * (0.8 * pricing - 1.5) + 0.4 * (size > 100)
        out.append({
            "lead_id": f"ex-{seed}-{i}", "label": int(rng.random() < 1 / (1 + 2.71828 ** -logit)),
            "features": x, "score": 0.5, "model_version": 0, "scored_at": _iso(0),
            "labelled_at": _iso(1), "revenue": None,
        })  # fmt: skip
    return out


async def test_revenue_is_learned_from_the_features_the_lead_was_labelled_with(rig: Any) -> None:
    r = rig(target_stage="sql")
    pipeline = r.pipeline()
    topic = pipeline.topics.training
    await pipeline.handle_raw("lead", as_messages([lead("a", 0, pages_viewed=2)]))
    await pipeline.handle_raw("conversion", as_messages([conversion("a", 3, "sql")]))
    (labelled,) = r.sent.on(topic)
    # An update re-scores the lead with later features; the won deal must not learn those.
    update = {**lead("a", 5, pages_viewed=40), "event_type": "lead_updated", "event_id": "upd-a"}
    await pipeline.handle_raw("lead", as_messages([update]))
    await pipeline.handle_raw(
        "conversion", as_messages([conversion("a", 30, "won", revenue="9000", currency="USD")])
    )
    revenue = [m for m in r.sent.on(topic) if m.get("kind") == "revenue"]
    assert len(revenue) == 1 and revenue[0]["features"] == labelled["features"]
    assert revenue[0]["features"]["pages_viewed"] == 2.0
    # A won deal for a lead never labelled positive (the won overtook everything) has none.
    await pipeline.handle_raw(
        "conversion", as_messages([conversion("zz", 30, "won", revenue="100", currency="USD")])
    )
    assert [m for m in r.sent.on(topic) if m.get("kind") == "revenue"][-1]["features"] is None


async def test_expected_value_uses_the_revenue_model_per_lead_and_sets_the_band(rig: Any) -> None:
    r = rig(revenue_min_examples=20, band_a=0.5, band_b=0.25, band_c=0.1, value_cap=2.0)
    pipeline = r.pipeline()
    rng = random.Random(1)
    deals = []
    for i in range(400):
        size = rng.choice([5, 5000])
        x = lead_features({"channel": "email", "company_size": size}, {})
        deals.append({"kind": "revenue", "lead_id": f"d{i}", "features": x,
                      "revenue": 2000.0 if size == 5 else 30000.0})  # fmt: skip
    await pipeline.learn(as_messages(deals))
    await pipeline.learn(as_messages(deals))  # redelivered: learned once
    # The conversion model has learned something too: before that a score is the prior,
    # published as a cold start without a band.
    assert pipeline.learning is not None
    pipeline.learning.scorer.learn_one(lead_features({"channel": "email"}, {}), False)
    await pipeline.publish()
    assert await pipeline.refresh_model()
    assert pipeline.model.revenue.n_learned == 400
    await pipeline.handle_raw("lead", as_messages([lead("small", 40, company_size=5),
                                                   lead("big", 40, company_size=5000)]))
    scored = {s["lead_id"]: s for s in r.sent.on(pipeline.topics.scored)}
    small, big = scored["small"], scored["big"]
    assert big["expected_value"] / big["score"] > 5 * small["expected_value"] / small["score"]
    mean = pipeline.model.revenue.mean
    for s in (small, big):
        revenue = s["expected_value"] / s["score"]
        assert s["band"] == value_band(s["score"], revenue, mean, 2.0, 0.5, 0.25, 0.1)


async def test_publish_records_metrics_promotion_and_drift(rig: Any) -> None:
    # The champion barely learns; the challenger is a normal model: it must take over.
    r = rig(optimizer="sgd", learning_rate=1e-5, promote_min_examples=300, metrics_window=1000,
            challengers=("logistic:optimizer=adagrad,learning_rate=0.1",))  # fmt: skip
    pipeline = r.pipeline()
    stream = examples(9000, seed=2, flip_at=5000)
    await pipeline.learn(as_messages(stream[:2000]))
    version = await pipeline.publish()
    assert version is not None
    bundle = pipeline.learning
    assert bundle is not None and bundle.champion == "logistic:optimizer=adagrad,learning_rate=0.1"
    db = r.settings.clickhouse.database
    rows = r.ch.query(
        f"SELECT model_name, role, scope, examples, auc, logloss, calibration "
        f"FROM {db}.model_metrics FINAL WHERE model_version = {version}"
    ).result_rows
    got = {(m, role, scope) for m, role, scope, *_ in rows}
    assert got == {
        ("logistic", "challenger", "rolling"), ("logistic", "challenger", "overall"),
        ("logistic:optimizer=adagrad,learning_rate=0.1", "champion", "rolling"),
        ("logistic:optimizer=adagrad,learning_rate=0.1", "champion", "overall"),
    }  # fmt: skip
    for _, _, scope, n, auc, logloss, calibration in rows:
        assert n == (1000 if scope == "rolling" else 2000) and 0.5 < auc <= 1 and logloss > 0
        assert sum(b["n"] for b in json.loads(calibration)) == n
    (promo,) = r.ch.query(
        f"SELECT action, from_model, to_model, to_version, actor, evidence "
        f"FROM {db}.model_promotions FINAL"
    ).result_rows
    assert promo[:5] == ("promote", "logistic", "logistic:optimizer=adagrad,learning_rate=0.1",
                         version, "learner")  # fmt: skip
    evidence = json.loads(promo[5])
    assert evidence["z"] > 3 and evidence["examples"] >= 300 and "paired" in evidence["test"]
    champion = "logistic:optimizer=adagrad,learning_rate=0.1"
    assert r.metric("leadstream_model_prequential",
                    {"model": champion, "scope": "rolling", "metric": "auc"}) > 0.5  # fmt: skip
    assert r.metric("leadstream_model_promotions_total", {"action": "promote", "actor": "learner"}) == 1
    # The concept flips at example 5000: the drift is found, stored and counted.
    await pipeline.learn(as_messages(stream[2000:]))
    await pipeline.publish()
    drifts = r.ch.query(
        f"SELECT dimension, dimension_value, value > expected FROM {db}.anomalies FINAL "
        "WHERE kind = 'model_drift'"
    ).result_rows
    assert drifts and drifts[0] == ("model", champion, True)
    detected = [d for d in bundle.drift.detections if d > 5000]
    assert detected and detected[0] < 7000
    assert r.metric("leadstream_model_drifts_total", {"model": champion}) >= 1
    assert r.metric("leadstream_examples_learned_total") == 9000


async def test_a_crashed_learner_resumes_from_its_snapshot_and_learns_nothing_twice(
    rig: Any,
) -> None:
    r = rig()
    stream = examples(600, seed=7)
    batches = [as_messages(stream[i : i + 100]) for i in range(0, 600, 100)]
    first = r.pipeline()
    for batch in batches[:3]:
        await first.learn(batch)  # each batch's offsets are committed after learn returns
    assert await first.publish() is not None  # the snapshot: 300 examples
    await first.learn(batches[3])  # committed, but the worker dies before the next snapshot
    await first.learn(batches[4][:50])  # dies in the middle of this batch: not committed
    del first  # crash: nothing published at shutdown
    second = r.pipeline()
    await second.learn(batches[4])  # the uncommitted batch is delivered again
    await second.learn(batches[3][:10])  # and a stray redelivery of committed examples
    await second.learn(batches[5])
    assert second.learning is not None
    # Resumed from the snapshot; the 150 examples learned after it are lost, none twice.
    assert second.learning.examples == 300 + 50 + 100
    assert r.metric("leadstream_examples_learned_total") == 150
    db = r.settings.clickhouse.database
    rows, leads = r.ch.query(
        f"SELECT count(), uniqExact(lead_id) FROM {db}.training_examples WHERE lead_id LIKE 'ex-7-%'"
    ).result_rows[0]
    assert rows == leads == 600


async def test_a_snapshot_of_an_older_layout_is_skipped_not_adopted(rig: Any) -> None:
    r = rig()
    pipeline = r.pipeline()
    await pipeline.learn(as_messages(examples(20, seed=11)))
    assert pipeline.learning is not None
    pipeline.learning.format = 1  # as written by an older release
    old = await pipeline.publish()
    assert old is not None and await pipeline.store.load(old) is None
    restarted = r.pipeline()
    await restarted.learn(as_messages(examples(5, seed=12)))
    assert restarted.learning is not None and restarted.learning.examples == 5
    assert await restarted.publish() == old + 1  # it publishes on, instead of re-adopting
