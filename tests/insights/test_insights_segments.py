"""Segment insights on generated leads whose true propensities are known, in real chDB.

The generator's hidden propensity is a logistic function of the channel, pricing-page
visits, a demo request, company size, page views, e-mail engagement, free-mail and
seniority (streaming/synthetic.py ``_BEFORE``); ``has_phone`` and ``utm_content`` play
no part in it. Here ``utm_content`` is further replaced by one of 24 values drawn from a
generator of its own, so uncorrected testing would find "effects" in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from scipy.stats import fisher_exact

from reporting.insights import converting_stages, segment_insights
from sinks.clickhouse import connect
from streaming import synthetic
from tests.insights._data import Loaded, chdb_settings, cohort, load_generated


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Any, Loaded]]:
    settings = chdb_settings(tmp_path_factory.mktemp("insights") / "chdb")
    loaded = load_generated(
        settings, synthetic.GeneratorConfig(seed=11, leads=10_000, days=60), noise_levels=24
    )
    client = connect(settings.clickhouse)
    yield client, settings, loaded
    client.close()  # chDB serves one data directory per process at a time


def _report(data: tuple[Client, Any, Loaded], **kw: Any) -> Any:
    client, settings, _ = data
    kw.setdefault("min_support", 50)
    return segment_insights(client, settings.clickhouse.database, settings.models, **kw)


def test_the_cohort_and_base_rate_match_an_independent_count(data: Any) -> None:
    _, settings, loaded = data
    report = _report(data, pairs=False)
    expected = cohort(loaded, set(converting_stages("sql")), 30)
    assert report.leads == len(expected)
    assert report.conversions == sum(converted for _, converted in expected.values())
    # Younger leads, whose outcome is not known yet, are left out.
    last_lead = max(e["occurred_at"] for e in loaded.events["lead"])
    early = _report(data, pairs=False, as_of=last_lead)
    expected_early = cohort(loaded, set(converting_stages("sql")), 30, as_of=last_lead)
    assert early.leads == len(expected_early) < report.leads
    assert early.conversions == sum(c for _, c in expected_early.values())
    assert report.base_low < report.base_rate < report.base_high
    assert _report(data, pairs=False, fields=["channel"]).base_rate == report.base_rate
    by_won = segment_insights(
        data[0], settings.clickhouse.database,
        settings.models.model_copy(update={"target_stage": "won"}), min_support=50, pairs=False,
    )  # fmt: skip
    expected_won = cohort(loaded, {"won"}, 30)
    assert by_won.conversions == sum(c for _, c in expected_won.values())
    assert by_won.base_rate < report.base_rate


def test_segments_with_truly_higher_or_lower_propensity_are_found(data: Any) -> None:
    report = _report(data)
    found = {s.label: s for s in report.segments}
    for label in ("channel=referral", "demo_requested=yes", "seniority=c_level"):
        s = found[label]
        assert s.direction == "higher" and s.lift > 1.3 and s.q_value <= 0.05, s
        assert s.rate_low <= s.rate <= s.rate_high and s.lift_low > 1.0
    for label in ("channel=paid_social", "seniority=entry"):
        s = found[label]
        assert s.direction == "lower" and s.lift < 0.8 and s.lift_high < 1.0, s
    # The true propensities agree with the direction of every reported single segment.
    _, _, loaded = data
    propensity = loaded.truth
    mean_p = sum(propensity.values()) / len(propensity)
    firsts = {e["lead_id"]: e for e in loaded.events["lead"] if e["event_type"] == "lead_created"}
    for label in ("channel=referral", "channel=paid_social", "seniority=c_level"):
        field, value = label.split("=")
        members = [lid for lid, e in firsts.items() if e.get(field) == value]
        true_rate = sum(propensity[lid] for lid in members) / len(members)
        assert (true_rate > mean_p) == (found[label].direction == "higher")


def test_a_field_with_no_effect_is_not_reported_after_correction(data: Any) -> None:
    _, _, loaded = data
    report = _report(data)
    tests = {t.field: t for t in report.fields}
    assert not tests["utm_content"].significant and not tests["has_phone"].significant
    assert tests["channel"].significant and tests["demo_requested"].significant
    assert not [s.label for s in report.segments if {"utm_content", "has_phone"} & set(s.fields)]
    # Uncorrected, value by value, the noise field would have "effects".
    leads = cohort(loaded, set(converting_stages("sql")), 30)
    total_n, total_k = len(leads), sum(c for _, c in leads.values())
    raw_p = []
    for level in {lead["utm_content"] for lead, _ in leads.values()}:
        outcomes = [c for lead, c in leads.values() if lead["utm_content"] == level]
        n, k = len(outcomes), sum(outcomes)
        table = [[k, n - k], [total_k - k, total_n - n - (total_k - k)]]
        raw_p.append(fisher_exact(table).pvalue)
    assert min(raw_p) < 0.05


def test_pairs_need_two_significant_parts_and_must_differ_from_them(data: Any) -> None:
    report = _report(data, include_all=True)
    singles = {s.label: s for s in report.segments if len(s.fields) == 1}
    pairs = [s for s in report.segments if len(s.fields) == 2]
    assert pairs and any(p.significant for p in pairs)
    for p in pairs:
        for f, v in zip(p.fields, p.values, strict=True):
            assert singles[f"{f}={v}"].significant
        assert p.lift_over_parts is not None
    assert report.tested == len(report.segments)
    assert report.significant == sum(s.significant for s in report.segments)


def test_ranking_limit_and_filters(data: Any) -> None:
    by_impact = _report(data, pairs=False).segments
    excess = [abs(s.excess_conversions) for s in by_impact]
    assert excess == sorted(excess, reverse=True)
    by_leads = _report(data, pairs=False, order_by="leads", limit=3).segments
    assert len(by_leads) == 3 and by_leads[0].leads >= by_leads[1].leads >= by_leads[2].leads
    _, _, loaded = data
    created = sorted(e["occurred_at"] for e in loaded.events["lead"])
    middle = created[len(created) // 2]
    later = _report(data, pairs=False, since=middle)
    assert 0 < later.leads < _report(data, pairs=False).leads
    assert _report(data, pairs=False, until=created[0]).leads == 0


def test_caller_mistakes_are_value_errors(data: Any) -> None:
    with pytest.raises(ValueError, match="unknown segment fields"):
        _report(data, fields=["channel", "channel'); DROP TABLE leads; --"])
    with pytest.raises(ValueError, match="min_support"):
        _report(data, min_support=0)
    with pytest.raises(ValueError, match="target stage"):
        converting_stages("lost")
