"""Features, bands, explanations and reasons."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from online_models.bundle import ModelBundle, band, reason
from online_models.features import lead_features
from online_models.lead_scorer import LeadScorer


def test_features_are_pure_and_use_engagement() -> None:
    lead = {
        "channel": "email",
        "pages_viewed": 0,
        "pricing_page_visits": 3,
        "industry": "saas",
        "country": "DE",
        "seniority": "vp",
        "company_size": 40,
        "email_is_free": True,
    }
    before = dict(lead)
    x = lead_features(lead, {"demo_request": 2, "page_view": 5})
    assert lead == before
    assert x["pricing_page_visits"] == 3.0
    assert x["eng_demo_request"] == pytest.approx(math.log1p(2))
    assert x["eng_call"] == 0.0
    assert x["email_is_free"] == 1.0
    assert {
        "channel=email",
        "industry=saas",
        "country=DE",
        "seniority=vp",
        "size_band=11-50",
    } <= set(x)
    assert x == lead_features(lead, {"demo_request": 2, "page_view": 5})


def test_missing_fields_are_allowed() -> None:
    x = lead_features({"channel": "referral"}, {})
    assert x["company_size_missing"] == 1.0
    assert not any(k.startswith(("industry=", "country=")) for k in x)


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.99, "A"),
        (0.5, "A"),
        (0.4999, "B"),
        (0.25, "B"),
        (0.2, "C"),
        (0.1, "C"),
        (0.0999, "D"),
        (0.0, "D"),
    ],
)
def test_band_thresholds(score: float, expected: str) -> None:
    assert band(score, 0.5, 0.25, 0.1) == expected


def _trained(n: int = 3000, seed: int = 3) -> LeadScorer:
    rng = random.Random(seed)
    model = LeadScorer()
    for _ in range(n):
        pricing = rng.randint(0, 4)
        channel = rng.choice(["paid_search", "email", "events"])
        p = 0.05 + 0.15 * pricing + (0.2 if channel == "events" else 0.0)
        x = lead_features({"channel": channel, "pricing_page_visits": pricing}, {})
        model.learn_one(x, rng.random() < p)
    return model


def test_model_learns_the_signal() -> None:
    model = _trained()
    hi = model.predict_proba_one(lead_features({"channel": "events", "pricing_page_visits": 4}, {}))
    lo = model.predict_proba_one(lead_features({"channel": "email", "pricing_page_visits": 0}, {}))
    assert hi[True] > lo[True] + 0.3


def test_contributions_add_up_to_the_logit() -> None:
    model = _trained()
    x = lead_features(
        {"channel": "events", "pricing_page_visits": 2, "industry": "new"}, {"call": 1}
    )
    e = model.explain_one(x)
    assert e.intercept + sum(c.contribution for c in e.contributions) == pytest.approx(
        e.logit, abs=1e-12
    )
    assert e.proba == pytest.approx(model.predict_proba_one(x)[True], abs=1e-12)
    assert 1 / (1 + math.exp(-e.logit)) == pytest.approx(e.proba)
    top = e.top(3)
    assert abs(top[0].contribution) >= abs(top[-1].contribution)


def test_reason_text_reads_for_sales() -> None:
    model = _trained()
    lead = {"channel": "events", "pricing_page_visits": 3}
    e = model.explain_one(lead_features(lead, {}))
    texts = {c.feature: reason(c, lead)["text"] for c in e.contributions}
    assert texts["pricing_page_visits"] == "3 pricing-page visits: raises the score"
    assert texts["channel=events"] == "channel is events: raises the score"


def test_every_reason_has_one_colon_before_its_effect() -> None:
    # A newcomer once read "e-mail opens: 3: raises the score"; a value is quoted once,
    # in the phrase, and one colon separates the phrase from the effect.
    from online_models.importance import published_explanation

    model = _trained()
    lead = {"channel": "paid_search", "pages_viewed": 5, "pricing_page_visits": 3,
            "email_opens": 3, "email_clicks": 2, "company_size": 250, "industry": "saas",
            "country": "DE", "seniority": "vp", "email_is_free": True, "demo_requested": True}  # fmt: skip
    e = model.explain_one(lead_features(lead, {"demo_request": 1, "page_view": 4}))
    published = published_explanation(e, len(e.raw), lead)["reasons"]
    texts = [reason(c, lead)["text"] for c in e.contributions] + [r["text"] for r in published]
    assert len(texts) > 10
    for text in texts:
        phrase, _, effect = text.partition(": ")
        assert effect in ("raises the score", "lowers the score"), text
        assert ":" not in phrase, text
    shown = {r["feature"]: r["text"].partition(": ")[0] for r in published}
    assert shown["email_opens"] == "3 e-mail opens"
    assert shown["log_company_size"] == "company size 250 employees"


def test_bundle_survives_pickling() -> None:
    bundle = ModelBundle(version=3, scorer=_trained(500))
    copy = pickle.loads(pickle.dumps(bundle))
    x = lead_features({"channel": "events", "pricing_page_visits": 1}, {})
    assert copy.scorer.predict_proba_one(x) == bundle.scorer.predict_proba_one(x)
    assert copy.version == 3


def test_published_reasons_quote_each_raw_value_as_given() -> None:
    # Reason texts are cached; 3 and 3.0 hash alike but read differently.
    from online_models.importance import published_explanation
    from online_models.lead_scorer import Contribution

    model = _trained()
    e = model.explain_one(lead_features({"channel": "events", "pricing_page_visits": 3}, {}))
    texts = []
    for shown in (3, 3.0, True, 3, 3.0):
        raw = {"pricing_page_visits": shown}
        reasons = published_explanation(e, len(e.raw), raw)["reasons"]
        (r,) = [r for r in reasons if r["feature"] == "pricing_page_visits"]
        c = Contribution(r["feature"], r["value"], r["contribution"])
        assert r == reason(c, raw)
        texts.append(r["text"])
    assert texts == [
        "3 pricing-page visits: raises the score", "3.0 pricing-page visits: raises the score",
        "pricing-page visits: raises the score", "3 pricing-page visits: raises the score",
        "3.0 pricing-page visits: raises the score",
    ]  # fmt: skip
