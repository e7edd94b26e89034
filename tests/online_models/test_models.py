"""Model kinds, explanations' contract, memory caps, the revenue model and the band."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from online_models.bundle import value_band
from online_models.features import lead_features
from online_models.kinds import build_model, parse_spec
from online_models.lead_scorer import LeadScorer
from online_models.revenue import RevenueModel
from online_models.tree_scorer import TreeScorer


def _examples(n: int, seed: int = 3) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pricing = rng.randint(0, 4)
        channel = rng.choice(["paid_search", "email", "events"])
        p = 0.05 + 0.15 * pricing + (0.2 if channel == "events" else 0.0)
        x = lead_features({"channel": channel, "pricing_page_visits": pricing,
                           "company_size": rng.choice([5, 80, 900])}, {})  # fmt: skip
        out.append((x, rng.random() < p))
    return out


@pytest.mark.parametrize("spec", ["logistic", "logistic:optimizer=sgd,learning_rate=0.01",
                                  "newton", "newton:c=0.3,window=1000",
                                  "hoeffding", "forest:n_models=3"])  # fmt: skip
def test_every_kind_learns_and_its_contributions_add_up_to_its_logit(spec: str) -> None:
    model = build_model(spec)
    data = _examples(3000)
    for x, y in data:
        model.learn_one(x, y)
    hi = lead_features({"channel": "events", "pricing_page_visits": 4}, {})
    lo = lead_features({"channel": "email", "pricing_page_visits": 0}, {})
    assert model.predict_proba_one(hi)[True] > model.predict_proba_one(lo)[True] + 0.2
    e = model.explain_one(hi)
    total = e.intercept + math.fsum(c.contribution for c in e.contributions)
    assert total == pytest.approx(e.logit, abs=1e-9)
    assert e.proba == pytest.approx(model.predict_proba_one(hi)[True], abs=1e-12)
    # Linear models explain exactly; trees say their contributions are approximate.
    assert e.exact == spec.startswith(("logistic", "newton"))
    copy = pickle.loads(pickle.dumps(model))
    assert copy.predict_proba_one(hi) == model.predict_proba_one(hi)


def test_logistic_intercept_is_the_model_intercept_and_terms_are_weight_times_scaled_value() -> None:
    model = LeadScorer(optimizer="adagrad", learning_rate=0.1)
    for x, y in _examples(2000):
        model.learn_one(x, y)
    x = lead_features({"channel": "events", "pricing_page_visits": 2}, {})
    e = model.explain_one(x)
    assert e.intercept == model.intercept
    by = {c.feature: c.contribution for c in e.contributions}
    assert by["channel=events"] == pytest.approx(model.weights["channel=events"])


def test_predict_learn_one_scores_before_learning() -> None:
    a, b = LeadScorer(), LeadScorer()
    for x, y in _examples(500):
        before = b.predict_proba_one(x)[True]
        assert a.predict_learn_one(x, y) == pytest.approx(before, abs=1e-15)
        b.learn_one(x, y)
    assert a.weights == b.weights


def test_newton_predict_learn_one_scores_before_learning_through_warm_up_and_solves() -> None:
    model = build_model("newton:window=400,warm_up=100")
    for x, y in _examples(1500):
        before = model.predict_proba_one(x)[True]
        assert model.predict_learn_one(x, y) == pytest.approx(before, abs=1e-15)
    assert model.n_learned == 1500


def test_a_tree_memory_cap_is_enforced_by_river() -> None:
    data = _examples(4000, seed=5)
    capped, free = TreeScorer("hoeffding", max_size_mb=0.002), TreeScorer("hoeffding", 64)
    for m in (capped, free):
        m._model.memory_estimate_period = 200
        for x, y in data:
            m.learn_one(x, y)
    # River deactivates leaves once the tree's estimated size passes max_size.
    assert capped.trees[0].n_inactive_leaves > 0
    assert free.trees[0].n_inactive_leaves == 0


def test_specs_are_checked() -> None:
    assert parse_spec("hoeffding:max_size_mb=8") == ("hoeffding", {"max_size_mb": 8.0})
    with pytest.raises(ValueError, match="not name=value with a name among"):
        parse_spec("forest:depth=3")
    with pytest.raises(ValueError, match="learning_rate must be a float"):
        parse_spec("logistic:learning_rate=fast")


def test_revenue_model_predicts_per_lead_after_enough_deals_and_the_mean_before() -> None:
    rng = random.Random(4)
    model = RevenueModel(min_examples=100)
    sizes = [5, 50, 500, 5000]
    for i in range(3000):
        size = rng.choice(sizes)
        x = lead_features({"company_size": size, "channel": "email"}, {})
        model.learn_one(x, 4000 * (size / 50) ** 0.4 * rng.lognormvariate(0, 0.3))
        if i == 50:
            assert model.predict_one(x) == pytest.approx(model.mean)
    small = model.predict_one(lead_features({"company_size": 5, "channel": "email"}, {}))
    big = model.predict_one(lead_features({"company_size": 5000, "channel": "email"}, {}))
    assert big > 4 * small
    # The lognormal mean: exp(μ + σ²/2) for a 50-person company is about 4000·e^0.045.
    mid = model.predict_one(lead_features({"company_size": 50, "channel": "email"}, {}))
    assert mid == pytest.approx(4000 * math.exp(0.045), rel=0.15)
    assert model.predict_one(None) == pytest.approx(model.mean)


@pytest.mark.parametrize(
    ("score", "revenue", "mean", "expected"),
    [
        (0.3, 10000.0, 10000.0, "B"),  # an average deal: the probability's band
        (0.3, 20000.0, 10000.0, "A"),  # twice the mean deal: 0.6
        (0.3, 2000.0, 10000.0, "C"),  # a fifth of it, capped at half: 0.15
        (0.2, 1e6, 10000.0, "B"),  # capped at twice: 0.4, never A on size alone
        (0.6, 0.0, 0.0, "A"),  # no revenue learned yet: the probability alone
    ],
)
def test_band_combines_probability_and_expected_value(
    score: float, revenue: float, mean: float, expected: str
) -> None:
    assert value_band(score, revenue, mean, 2.0, 0.5, 0.25, 0.1) == expected
