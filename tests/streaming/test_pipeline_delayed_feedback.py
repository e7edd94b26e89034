"""Delayed-feedback label policies through the pipeline and the learner, on real Redis and chDB.

Each lead's effect on the model is what its policy defines, once: a replayed batch, or a
learner restarted from its snapshot that reads the batch again, leaves the model as it was.
"""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from online_models.bundle import ModelBundle
from online_models.features import lead_features
from streaming.pipeline import Message, Pipeline
from tests.learning._rig import Captured
from tests.streaming.test_pipeline_labels import _opened, conversion, lead, msg

pytestmark = pytest.mark.integration


@pytest.fixture
async def es_dfm(
    redis_url: str, run_id: str, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, Captured, Any]]:
    async with _opened(
        redis_url, f"esdfm-{run_id}", tmp_path, label_policy="es_dfm", window_days=1.0
    ) as opened:
        yield opened


@pytest.fixture
async def fnw(
    redis_url: str, run_id: str, tmp_path: Path
) -> AsyncIterator[tuple[Pipeline, Captured, Any]]:
    async with _opened(redis_url, f"fnw-{run_id}", tmp_path, label_policy="fnw") as opened:
        yield opened


def _messages(values: list[dict[str, Any]]) -> list[Message]:
    return [Message(0, i, None, orjson.dumps(v), 0.0) for i, v in enumerate(values)]


def _state(bundle: ModelBundle) -> bytes:
    """The learned state that matters: every candidate's model and the delay model."""
    return pickle.dumps(
        ({n: c.model for n, c in bundle.candidates.items()}, bundle.delays, bundle.examples)
    )


async def test_es_dfm_learns_each_lead_as_its_window_says_once(es_dfm: Any) -> None:
    pipeline, sent, _ = es_dfm
    leads = [lead(k, 0, pages_viewed=i) for i, k in enumerate("abcd")]
    await pipeline.handle_raw("lead", [msg(e) for e in leads])
    await pipeline.handle_raw("conversion", [msg(conversion("a", 0.5, "sql"))])  # in its window
    await pipeline.sweep()  # the watermark (day 0.5) is before every window's end
    assert [e.get("kind") for e in sent.on(pipeline.topics.training)] == ["provisional"] * 4 + [
        None
    ]
    await pipeline.handle_raw("conversion", [msg(conversion("x", 2, "mql"))])
    await pipeline.sweep()  # day 2: b, c and d passed their window without converting
    training = sent.on(pipeline.topics.training)
    assert sorted(e["lead_id"] for e in training if e.get("kind") == "window") == ["b", "c", "d"]
    await pipeline.handle_raw("conversion", [msg(conversion("b", 5, "sql"))])  # after it
    await pipeline.handle_raw("conversion", [msg(conversion("y", 40, "mql"))])
    assert await pipeline.sweep() == 2  # c and d: the horizon passed
    training = sent.on(pipeline.topics.training)
    assert all(e["created_at"] is not None for e in training)
    positives = {e["lead_id"]: e["converted_at"] - e["created_at"] for e in training if e["label"]}
    assert positives == {"a": pytest.approx(0.5 * 86400), "b": pytest.approx(5 * 86400)}
    batch = _messages(training)
    await pipeline.learn(batch)
    bundle = pipeline.learning
    assert bundle is not None
    # a: a positive; b: a negative at its window, then a positive; c, d: a negative each at
    # their window (their horizon negatives are only scored).
    assert bundle.scorer.n_learned == 5
    assert (bundle.examples, bundle.positives, bundle.delays.n) == (4, 2, 2)
    before = _state(bundle)
    await pipeline.learn(batch)  # a redelivery: nothing is learned twice
    assert _state(bundle) == before
    await pipeline.publish()
    pipeline.learning = None  # a restarted learner: resumes from the snapshot
    await pipeline.learn(batch)
    assert pipeline.learning is not None and _state(pipeline.learning) == before


async def test_es_dfm_learns_a_missed_window_with_a_late_conversion(es_dfm: Any) -> None:
    """The sweep runs after a batch: a conversion that moves the watermark past its own
    lead's window comes before the window example; the learner learns the negative once."""
    pipeline, sent, _ = es_dfm
    await pipeline.handle_raw("lead", [msg(lead("e", 0))])
    await pipeline.handle_raw("conversion", [msg(conversion("e", 3, "sql"))])
    await pipeline.sweep()  # e is settled: no window example
    training = sent.on(pipeline.topics.training)
    assert [e.get("kind") for e in training] == ["provisional", None]
    await pipeline.learn(_messages(training))
    bundle = pipeline.learning
    assert bundle is not None and bundle.scorer.n_learned == 2  # its window negative, its positive
    await pipeline.learn(_messages([*training, {**training[0], "kind": "window"}]))
    assert bundle.scorer.n_learned == 2


async def test_fnw_publishes_the_model_probability_and_learns_weighted(fnw: Any) -> None:
    pipeline, sent, _ = fnw
    features = lead_features(lead("a", 0, pages_viewed=3), {})
    await pipeline.handle_raw("lead", [msg(lead("a", 0, pages_viewed=3)), msg(lead("b", 1))])
    q = pipeline.model.scorer.predict_proba_one(features)[True]
    scored = sent.on(pipeline.topics.scored)[0]
    assert scored["score"] == pytest.approx(q, abs=1e-6)  # no q / (1 - q): the weights did it
    # the published explanation adds up to the published score's logit
    parts = scored["intercept"] + sum(r["contribution"] for r in scored["reasons"])
    assert parts + scored["unlisted_contribution"] == pytest.approx(scored["logit"], abs=1e-4)
    await pipeline.handle_raw("conversion", [msg(conversion("a", 5, "sql"))])
    await pipeline.handle_raw("conversion", [msg(conversion("x", 40, "mql"))])
    assert await pipeline.sweep() == 1
    batch = _messages(sent.on(pipeline.topics.training))
    await pipeline.learn(batch)
    bundle = pipeline.learning
    assert bundle is not None
    assert bundle.scorer.n_learned == 3  # two fake negatives, one positive
    before = _state(bundle)
    await pipeline.learn(batch)
    assert _state(bundle) == before
    # the published scores' live quality on /metrics
    (family,) = pipeline.metrics.published_quality.collect()
    samples = {(s.labels["scope"], s.labels["metric"]): s.value for s in family.samples}
    assert samples[("overall", "logloss")] > 0
    assert samples[("weeks", "observed")] == 0.5  # a converted, b not
