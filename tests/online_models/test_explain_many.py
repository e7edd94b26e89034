"""The batch explanation equals the per-lead one: same top reasons, same logit to rounding."""

from __future__ import annotations

import math
import random

import pytest

from online_models.importance import scored_fields, scored_many
from online_models.lead_scorer import LeadScorer


def _lead(rng: random.Random) -> dict[str, float]:
    x = {"visits": float(rng.randint(0, 5)), "size": rng.random() * 100, "zero": 0.0}
    x[f"channel={rng.choice('abcde')}"] = 1.0
    if rng.random() < 0.3:
        x["never_learned"] = 3.0  # no weight: left out, as explain_one leaves it out
    if rng.random() < 0.3:
        x["constant"] = 1.0  # a weight but no spread: contributes 0.0 (ties in the top)
    return x


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad"])
@pytest.mark.parametrize("top", [1, 3, 10])
def test_explain_many_equals_explain_one(optimizer: str, top: int) -> None:
    rng = random.Random(7)
    model = LeadScorer(optimizer=optimizer)  # type: ignore[arg-type]
    for _ in range(2000):
        x = _lead(rng)
        x.pop("never_learned", None)
        model.learn_one(x, rng.random() < 0.1 + 0.1 * x["visits"])
    xs = [_lead(rng) for _ in range(300)] + [{}, {"never_learned": 1.0}, {"zero": 0.0}]
    batch = model.explain_many(xs, top)
    for i, x in enumerate(xs):
        one = model.explain_one(x)
        # The order the published reasons take (a stable sort: ties keep the row's order).
        assert batch.top[i] == sorted(one.raw, key=lambda r: -abs(r[2]))[:top]
        assert math.isclose(batch.logit[i], one.logit, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(batch.proba[i], one.proba, rel_tol=1e-12, abs_tol=1e-15)


def test_scored_many_publishes_what_scored_fields_publishes() -> None:
    rng = random.Random(3)
    model = LeadScorer()
    for _ in range(1000):
        x = _lead(rng)
        model.learn_one(x, rng.random() < 0.3)
    xs = [_lead(rng) for _ in range(200)]
    raws = [{"visits": x["visits"]} for x in xs]
    many = scored_many(model, xs, raws, 3, True)
    for (p, fields, text), x, raw in zip(many, xs, raws, strict=True):
        p1, fields1, text1 = scored_fields(model, x, raw, 3, True)
        assert text == text1
        assert math.isclose(p, p1, rel_tol=1e-12)
        for name in ("intercept", "unlisted_contribution", "logit"):
            assert math.isclose(fields[name], fields1[name], abs_tol=1.5e-6)
