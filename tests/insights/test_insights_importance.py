"""Global feature importance: the arithmetic on a model, and the features rebuilt from chDB."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from online_models.features import lead_features
from online_models.importance import feature_importance, field_of
from online_models.lead_scorer import LeadScorer
from reporting.insights import importance_report, recent_lead_features
from sinks.clickhouse import connect
from streaming import synthetic
from tests.insights._data import Loaded, chdb_settings, load_generated


def _trained(seed: int = 2) -> tuple[LeadScorer, list[dict[str, float]]]:
    rng = random.Random(seed)

    def lead() -> dict[str, float]:
        return {
            "pricing_page_visits": float(rng.randint(0, 4)),
            "noise": rng.gauss(0.0, 1.0),
            f"channel={rng.choice(['referral', 'ads', 'ads', 'ads'])}": 1.0,
        }

    model = LeadScorer(learning_rate=0.05)
    for _ in range(4000):
        x = lead()
        p = 0.05 + 0.15 * x["pricing_page_visits"] + 0.2 * x.get("channel=referral", 0.0)
        model.learn_one(x, rng.random() < p)
    return model, [lead() for _ in range(1000)]


def test_importance_is_the_mean_of_the_exact_contributions() -> None:
    model, sample = _trained()
    rows = {r.feature: r for r in feature_importance(model, sample)}
    assert next(iter(rows)) == "pricing_page_visits"  # the strongest signal first
    assert (
        rows["pricing_page_visits"].mean_abs_contribution > 3 * rows["noise"].mean_abs_contribution
    )
    explained = [model.explain_one(x) for x in sample]
    referral = [c for e in explained for name, _, c in e.raw if name == "channel=referral"]
    row = rows["channel=referral"]
    assert row.present == len(referral)
    assert row.mean_abs_contribution == pytest.approx(sum(map(abs, referral)) / len(sample))
    # An indicator's standardised weight: |w| · sd of the 0/1 feature, with w's sign.
    w, q = referral[0], len(referral) / len(sample)
    assert row.logit_per_sd == pytest.approx(w * math.sqrt(q * (1 - q)), rel=1e-9)
    assert (row.logit_per_sd or 0) > 0 and (rows["pricing_page_visits"].logit_per_sd or 0) > 0
    assert sum(r.share for r in rows.values()) == pytest.approx(1.0)


def test_grouped_by_field_adds_a_field_s_values_per_lead() -> None:
    model, sample = _trained()
    grouped = {r.feature: r for r in feature_importance(model, sample, by_field=True)}
    assert set(grouped) == {"pricing_page_visits", "noise", "channel"}
    per_lead = [
        abs(sum(c for name, _, c in model.explain_one(x).raw if field_of(name) == "channel"))
        for x in sample
    ]
    assert grouped["channel"].mean_abs_contribution == pytest.approx(sum(per_lead) / len(sample))
    assert grouped["channel"].logit_per_sd is None
    assert feature_importance(model, []) == []


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Any, Loaded]]:
    settings = chdb_settings(tmp_path_factory.mktemp("importance") / "chdb")
    loaded = load_generated(settings, synthetic.GeneratorConfig(seed=5, leads=600, days=20))
    client = connect(settings.clickhouse)
    yield client, settings, loaded
    client.close()  # chDB serves one data directory per process at a time


def test_recent_features_are_the_scorer_s_features_of_the_latest_lead_events(data: Any) -> None:
    client, settings, loaded = data
    got = recent_lead_features(client, settings.clickhouse.database, limit=200)
    leads = sorted(loaded.events["lead"], key=lambda e: (e["occurred_at"], e["event_id"]))[-200:]
    touches = loaded.events["touchpoint"]
    expected = []
    for lead in leads:
        engagement: dict[str, float] = {}
        for t in touches:
            if t["lead_id"] == lead["lead_id"] and t["occurred_at"] <= lead["occurred_at"]:
                engagement[t["event_type"]] = engagement.get(t["event_type"], 0.0) + 1.0
        expected.append(lead_features(lead, engagement))
    assert len(got) == 200
    assert sorted(map(sorted, (x.items() for x in got))) == sorted(
        map(sorted, (x.items() for x in expected))
    )
    assert any(x["eng_page_view"] > 0 for x in got)  # engagement so far is part of it


def test_importance_report_over_recent_leads(data: Any) -> None:
    client, settings, loaded = data
    model = LeadScorer()
    for lead in loaded.events["lead"]:
        model.learn_one(lead_features(lead, {}), bool(lead.get("demo_requested")))
    report = importance_report(client, settings.clickhouse.database, model, 7, limit=300)
    assert report.model_version == 7 and report.leads == 300
    assert report.features[0].feature == "demo_requested"
    assert report.model_dump(mode="json")["features"][0]["feature"] == "demo_requested"
    with pytest.raises(ValueError, match="limit"):
        recent_lead_features(client, settings.clickhouse.database, limit=0)
