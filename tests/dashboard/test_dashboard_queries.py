"""The analytics views on real chDB: numbers equal those computed from the events themselves.

Also: a replayed batch changes nothing (the rollups do not double count), the
segment path (lead_facts) agrees with the rollup path (funnel_daily), and
filter values are validated before they reach a query.
"""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client
from pydantic import ValidationError

from reporting.queries import Analytics, Filters
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded

ALL = Filters(start=_data.START, end=_data.END)


@pytest.fixture(scope="module")
def analytics(chdb: Client) -> Analytics:
    return Analytics(chdb, _data.DB)


def test_kpis_equal_the_generated_events(analytics: Analytics, loaded: Loaded) -> None:
    want = _data.totals(loaded.expected)
    got = analytics.kpis(ALL).current
    assert got.leads == want["leads"] > 1000
    assert got.sql == want["sql"] > 0
    assert got.won == want["won"] > 0
    assert got.revenue == pytest.approx(want["revenue"], abs=0.05)
    assert got.spend == pytest.approx(want["spend"], abs=0.05)
    assert got.cpl == pytest.approx(want["spend"] / want["leads"], abs=0.01)


def test_roi_by_channel_matches_per_channel(analytics: Analytics, loaded: Loaded) -> None:
    rows = {r.key: r for r in analytics.roi(ALL, "channel")}
    exp = loaded.expected
    assert set(rows) == set(exp.leads)
    for ch, row in rows.items():
        assert row.leads == exp.leads[ch], ch
        assert row.won == exp.won[ch], ch
        assert row.revenue == pytest.approx(exp.revenue[ch], abs=0.05), ch
        assert row.spend == pytest.approx(exp.spend[ch], abs=0.05), ch


def test_drill_down_channel_campaigns_and_leads(analytics: Analytics, loaded: Loaded) -> None:
    campaigns = analytics.roi(ALL.model_copy(update={"channel": "paid_search"}), "campaign_id")
    assert {r.channel for r in campaigns} == {"paid_search"}
    assert sum(r.leads for r in campaigns) == loaded.expected.leads["paid_search"]
    top = max(campaigns, key=lambda r: r.leads).key
    leads = analytics.leads(
        ALL.model_copy(update={"channel": "paid_search", "campaign_id": top}), 20
    )
    assert 0 < len(leads) <= 20
    assert {r.campaign_id for r in leads} == {top}
    scores = [r.score for r in leads]
    assert scores == sorted(scores, reverse=True)
    assert leads[0].reasons and leads[0].reasons[0]["text"]
    dumped = " ".join(r.model_dump_json() for r in leads)
    assert "@" not in dumped and "hash" not in dumped  # no e-mail, no e-mail/phone hashes


def test_funnel_rates_and_medians(analytics: Analytics, loaded: Loaded) -> None:
    funnel = analytics.funnel(ALL)
    counts = [s.leads for s in funnel.stages]
    assert counts[0] == _data.totals(loaded.expected)["leads"]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    mql = funnel.stages[1]
    assert mql.rate_from_previous == pytest.approx(counts[1] / counts[0], abs=1e-4)
    assert all(s.median_days_from_previous and s.median_days_from_previous > 0
               for s in funnel.stages[1:])  # fmt: skip


def test_lead_quality_bands_and_histogram(analytics: Analytics, loaded: Loaded) -> None:
    quality = analytics.lead_quality(ALL)
    by_band: dict[str, int] = {}
    for row in quality.bands_by_channel:
        by_band[row["band"]] = by_band.get(row["band"], 0) + row["leads"]
    assert by_band == {b: n for b, n in loaded.expected.bands.items() if n}
    assert sum(b["leads"] for b in quality.histogram) == quality.scored >= sum(by_band.values())


def test_segment_path_agrees_with_rollups(analytics: Analytics) -> None:
    by_industry = analytics.roi(ALL, "industry")
    by_channel = analytics.roi(ALL, "channel")
    assert sum(r.leads for r in by_industry) == sum(r.leads for r in by_channel)
    assert sum(r.won for r in by_industry) == sum(r.won for r in by_channel)
    # spend is shared out by leads: the parts add up to the whole
    assert sum(r.spend for r in by_industry) == pytest.approx(
        sum(r.spend for r in by_channel), rel=1e-6
    )
    industry = max(by_industry, key=lambda r: r.leads).key
    one = analytics.kpis(ALL.model_copy(update={"industry": industry})).current
    assert one.leads == next(r.leads for r in by_industry if r.key == industry)


def test_filters_change_the_numbers(analytics: Analytics) -> None:
    everything = analytics.kpis(ALL).current
    email = analytics.kpis(ALL.model_copy(update={"channel": "email"})).current
    band_a = analytics.kpis(ALL.model_copy(update={"band": "A"})).current
    assert 0 < email.leads < everything.leads
    assert 0 < band_a.leads < everything.leads
    half = analytics.kpis(ALL.model_copy(update={"end": _data.START.replace(day=20)}))
    assert half.current.leads < everything.leads and half.previous.leads == 0


def test_cohorts_anomalies_model_health(analytics: Analytics) -> None:
    cohorts = analytics.cohorts(ALL)
    assert len(cohorts) >= 6 and all(c.week.weekday() == 0 for c in cohorts)
    assert sum(c.leads for c in cohorts) == analytics.kpis(ALL).current.leads
    assert [a.dimension_value for a in analytics.anomalies(ALL)] == ["email", "paid_social"]
    assert [
        a.dimension_value for a in analytics.anomalies(ALL.model_copy(update={"channel": "email"}))
    ] == ["email"]
    health = analytics.model_health(ALL)
    assert len(health.metrics) == 11 and health.metrics[0]["model_version"] == 11
    # No labelled leads in this data: no published scores' AUC, and no error.
    assert health.published.model_dump() == {"examples": 0, "positives": 0, "auc": None}
    assert health.published_by_week == []  # nor their calibration by week


def test_a_replayed_batch_is_not_counted_twice(
    analytics: Analytics, chdb: Client, loaded: Loaded
) -> None:
    before_kpis = analytics.kpis(ALL)
    before_quality = analytics.lead_quality(ALL)
    before_mark = analytics.watermark()
    _data.replay(chdb, loaded.expected)
    analytics.refresh()
    assert analytics.watermark() != before_mark
    assert analytics.kpis(ALL) == before_kpis
    assert analytics.lead_quality(ALL) == before_quality
    assert analytics.roi(ALL, "industry")[0].leads > 0
    live = sum(r["leads"] for r in analytics.live(24 * 60))
    assert live == before_kpis.current.leads


@pytest.mark.parametrize(
    "bad",
    [{"channel": "x' OR 1=1 --"}, {"campaign_id": "a;DROP TABLE leads"}, {"band": "E"},
     {"end": _data.START.replace(day=1)}, {"industry": "x" * 81}],
)  # fmt: skip
def test_malformed_filters_never_reach_a_query(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Filters.model_validate({"start": _data.START, "end": _data.END, **bad})


def test_only_allow_listed_names_become_sql() -> None:
    from reporting import _sql

    assert _sql.where(["industry", "band"], _sql.FACTS_FILTERS, "x") == (
        "x AND industry = {industry:String} AND band = {band:String}"
    )
    with pytest.raises(KeyError):
        _sql.where(["industry"], _sql.ROLLUP_FILTERS, "x")  # not in the rollup's allow-list
    with pytest.raises(KeyError):
        _sql.where(["channel = '' OR 1"], _sql.FACTS_FILTERS, "x")
    # every value travels as a server-side parameter: no quote in any fragment
    assert not any("'" in frag for frag in _sql.FACTS_FILTERS.values())


def test_segment_rollup_agrees_with_the_per_lead_table(analytics: Analytics) -> None:
    industry = max(analytics.roi(ALL, "industry"), key=lambda r: r.leads).key
    one = ALL.model_copy(update={"industry": industry})
    rollup = analytics.kpis(one).current  # one segment field: funnel_segments_daily
    by_country = analytics.roi(one, "country")  # two segment fields: lead_facts
    assert rollup.leads == sum(r.leads for r in by_country) > 0
    assert rollup.won == sum(r.won for r in by_country)
    assert rollup.revenue == pytest.approx(sum(r.revenue for r in by_country), abs=0.05)
    two = one.model_copy(update={"country": by_country[0].key})
    assert analytics.funnel(two).stages[0].leads == by_country[0].leads
