"""The synthetic generator: valid, ordered, deterministic, and the knobs do what they say."""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from streaming.events import EVENT_MODELS, LeadEvent
from streaming.synthetic import (
    CAMPAIGNS,
    Anomaly,
    AnomalyKind,
    Emitted,
    GeneratorConfig,
    LeadTruth,
    generate,
    propensities,
    truth_writer,
    write_csv,
    write_jsonl,
    write_truth,
)

NOISY = GeneratorConfig(seed=11, leads=4000, days=42, bad_fraction=0.04, duplicate_fraction=0.03)
CLEAN = GeneratorConfig(seed=5, leads=6000, days=56)


def run(cfg: GeneratorConfig) -> tuple[list[Emitted], list[LeadTruth]]:
    truths: list[LeadTruth] = []
    return list(generate(cfg, truth=truths.append)), truths


@pytest.fixture(scope="module")
def noisy() -> tuple[list[Emitted], list[LeadTruth]]:
    return run(NOISY)


@pytest.fixture(scope="module")
def clean() -> tuple[list[Emitted], list[LeadTruth]]:
    return run(CLEAN)


def good(events: list[Emitted]) -> list[Emitted]:
    return [e for e in events if not e.bad]


def daily_leads(events: list[Emitted], channel: str | None = None) -> Counter[str]:
    return Counter(
        e.value["occurred_at"][:10]
        for e in good(events)
        if isinstance(e.value, dict)
        and e.value["event_type"] == "lead_created"
        and channel in (None, e.value["channel"])
    )


def test_same_seed_gives_byte_identical_output(tmp_path: Path) -> None:
    cfg = GeneratorConfig(
        seed=3,
        leads=800,
        days=20,
        bad_fraction=0.05,
        duplicate_fraction=0.05,
        drift_at=0.5,
        anomalies=(Anomaly("cpl_spike", "paid_search", None, 5, 3, 2.0),),
    )
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"]
    write_jsonl(generate(cfg), paths[0])
    write_jsonl(generate(cfg), paths[1])
    write_jsonl(generate(GeneratorConfig(seed=4, leads=800, days=20)), paths[2])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_every_good_event_validates(noisy: tuple[list[Emitted], list[LeadTruth]]) -> None:
    events = good(noisy[0])
    assert len(events) > 15_000
    assert {e.kind for e in events} == {"lead", "touchpoint", "conversion", "spend"}
    for e in events:
        assert isinstance(e.value, dict)
        model = EVENT_MODELS[e.kind].model_validate(e.value)
        assert e.key == (e.value["campaign_id"] if e.kind == "spend" else e.value["lead_id"])
        assert e.value["occurred_at"].endswith("Z") and e.value["schema_version"] == 1
        assert model.event_id == e.value["event_id"]


def test_every_bad_event_is_rejected(noisy: tuple[list[Emitted], list[LeadTruth]]) -> None:
    bad = [e for e in noisy[0] if e.bad]
    assert 0.02 < len(bad) / len(noisy[0]) < 0.06
    flavours: Counter[str] = Counter()
    for e in bad:
        model = EVENT_MODELS[e.kind]
        with pytest.raises(ValidationError):
            if isinstance(e.value, bytes):
                model.model_validate_json(e.value)
            else:
                model.model_validate(e.value)
        if isinstance(e.value, bytes):
            flavours["bytes"] += 1
        else:
            v = e.value
            flavours["closed"] += v.get("stage") == "closed"
            flavours["negative"] += v.get("amount") == "-12.50"
            flavours["lots"] += v.get("pages_viewed") == "lots"
            flavours["missing"] += not {"occurred_at", "event_type"} <= set(v)
            flavours["unknown"] += v.get("event_type") == "lead_deleted"
    assert all(
        flavours[f] > 0 for f in ("bytes", "closed", "negative", "lots", "missing", "unknown")
    )


def test_events_are_in_occurred_at_order(noisy: tuple[list[Emitted], list[LeadTruth]]) -> None:
    stamps = [e.value["occurred_at"] for e in good(noisy[0]) if isinstance(e.value, dict)]
    assert stamps == sorted(stamps)  # same-width ISO strings sort as times


def test_event_ids_unique_except_duplicates(noisy: tuple[list[Emitted], list[LeadTruth]]) -> None:
    by_id: defaultdict[str, list[dict[str, object]]] = defaultdict(list)
    for e in good(noisy[0]):
        assert isinstance(e.value, dict)
        by_id[e.value["event_id"]].append(e.value)
    repeated = [vs for vs in by_id.values() if len(vs) > 1]
    assert 0.015 < len(repeated) / len(by_id) < 0.045
    assert all(len(vs) == 2 and vs[0] == vs[1] for vs in repeated)


def test_noise_leaves_the_clean_stream_unchanged() -> None:
    cfg = GeneratorConfig(seed=2, leads=500, days=10)
    noisy = GeneratorConfig(seed=2, leads=500, days=10, bad_fraction=0.1, duplicate_fraction=0.1)
    seen: set[str] = set()
    kept = []
    for e in generate(noisy):
        if not e.bad and isinstance(e.value, dict) and e.value["event_id"] not in seen:
            seen.add(e.value["event_id"])
            kept.append(e)
    assert kept == list(generate(cfg))


def test_base_rate_and_conversions_match_truth(
    clean: tuple[list[Emitted], list[LeadTruth]],
) -> None:
    events, truths = clean
    rate = sum(t.converted for t in truths) / len(truths)
    assert 0.10 <= rate <= 0.20
    assert abs(rate - statistics.fmean(t.propensity for t in truths)) < 0.02
    stages: defaultdict[str, list[str]] = defaultdict(list)
    for e in events:
        if e.kind == "conversion":
            assert isinstance(e.value, dict)
            stages[e.key].append(e.value["stage"])
            if e.value["stage"] == "won":
                assert Decimal(e.value["revenue"]) > 0 and e.value["currency"] in ("USD", "EUR")
    assert {k for k, s in stages.items() if "sql" in s} == {
        t.lead_id for t in truths if t.converted
    }
    assert sum(t.stage == "" for t in truths) / len(truths) > 0.5  # most leads never convert
    for s in stages.values():
        order = ["mql", "sql", "opportunity", "won", "lost"]
        assert s[0] == "mql" and [order.index(x) for x in s] == sorted(order.index(x) for x in s)


def test_conversions_arrive_later_than_the_lead(
    clean: tuple[list[Emitted], list[LeadTruth]],
) -> None:
    created = {t.lead_id: t.occurred_at for t in clean[1]}
    later = [e.value["occurred_at"] > created[e.key] for e in clean[0]
             if e.kind in ("conversion", "touchpoint") and isinstance(e.value, dict)]  # fmt: skip
    assert later and all(later)


def test_propensity_ranks_outcomes(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    truths = sorted(clean[1], key=lambda t: t.propensity)
    decile = len(truths) // 10
    top = sum(t.converted for t in truths[-decile:]) / decile
    bottom = sum(t.converted for t in truths[:decile]) / decile
    assert top > 5 * bottom


def test_high_propensity_leads_engage_more(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    touches = Counter(e.key for e in clean[0] if e.kind == "touchpoint")
    truths = sorted(clean[1], key=lambda t: t.propensity)
    decile = len(truths) // 10
    top = statistics.fmean(touches[t.lead_id] for t in truths[-decile:])
    bottom = statistics.fmean(touches[t.lead_id] for t in truths[:decile])
    assert top > 2 * bottom


def test_weekends_are_quieter(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    per_day = daily_leads(clean[0])
    weekend = [n for d, n in per_day.items() if date.fromisoformat(d).weekday() >= 5]
    weekday = [n for d, n in per_day.items() if date.fromisoformat(d).weekday() < 5]
    assert statistics.fmean(weekend) < 0.5 * statistics.fmean(weekday)


def test_business_hours_are_busier(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    hours = Counter(int(t.occurred_at[11:13]) for t in clean[1])
    assert hours[14] > 5 * hours[2]


def test_lead_fields_look_real(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    leads = [e.value for e in clean[0] if e.kind == "lead" and isinstance(e.value, dict)]
    created = [v for v in leads if v["event_type"] == "lead_created"]
    assert 0.03 < (len(leads) - len(created)) / len(created) < 0.08  # lead_updated
    assert {v["channel"] for v in created} == set(CAMPAIGNS)
    assert {v["seniority"] for v in created} == {"entry", "manager", "director", "vp", "c_level"}
    domains = Counter(v["email"].split("@")[1] for v in created)
    free = sum(domains[d] for d in ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com"))
    assert 0.1 < free / len(created) < 0.35 and len(domains) > 100
    countries = {v["country"] for v in created}
    assert {"DE", "DEU", "Germany", "de"} <= countries
    assert {LeadEvent.model_validate(v).country for v in created} <= {
        "US", "GB", "DE", "FR", "CA", "AU", "NL", "IN", "BR", "ES", "SE", "JP"}  # fmt: skip
    kept = LeadEvent.model_validate(created[0]).model_extra
    assert kept is not None and {"utm_content", "landing_page"} <= set(kept)
    sizes = sorted(v["company_size"] for v in created)
    assert sizes[len(sizes) // 2] < 200 < sizes[-1]


def test_spend_one_per_campaign_per_day(clean: tuple[list[Emitted], list[LeadTruth]]) -> None:
    spend = [e.value for e in clean[0] if e.kind == "spend" and isinstance(e.value, dict)]
    n_campaigns = sum(len(c) for c in CAMPAIGNS.values())
    assert len(spend) == n_campaigns * CLEAN.days
    assert len({(s["campaign_id"], s["date"]) for s in spend}) == len(spend)
    assert all(len(s["amount"].split(".")[1]) == 2 for s in spend)
    currencies = Counter(s["currency"] for s in spend)
    assert currencies["USD"] > 2 * currencies["EUR"] > 0
    organic = {s["amount"] for s in spend if s["channel"] == "organic_search"}
    assert organic == {"0.00"}
    assert all(len(ids) in range(2, 6) for ids in CAMPAIGNS.values())
    assert "ps-brand-01" in CAMPAIGNS["paid_search"]


def spend_by_day(events: list[Emitted], campaign: str) -> dict[str, float]:
    return {e.value["date"]: float(e.value["amount"]) for e in events
            if e.kind == "spend" and isinstance(e.value, dict) and e.key == campaign}  # fmt: skip


@pytest.mark.parametrize("kind, factor", [("volume_spike", 3.0), ("volume_drop", 0.2)])
def test_volume_anomaly_scales_that_channel(kind: AnomalyKind, factor: float) -> None:
    base_cfg = GeneratorConfig(seed=9, leads=6000, days=30)
    anomaly = Anomaly(kind, "paid_social", None, start_day=10, days=3, factor=factor)
    base, _ = run(base_cfg)
    hit, _ = run(GeneratorConfig(seed=9, leads=6000, days=30, anomalies=(anomaly,)))
    b, h = daily_leads(base, "paid_social"), daily_leads(hit, "paid_social")
    window = ["2026-01-15", "2026-01-16", "2026-01-17"]
    ratio = sum(h[d] for d in window) / sum(b[d] for d in window)
    assert factor * 0.85 < ratio < factor * 1.15
    outside = [d for d in b if d not in window]
    assert [h[d] for d in outside] == [b[d] for d in outside]
    assert daily_leads(hit, "email") == daily_leads(base, "email")


def test_cpl_spike_scales_spend_of_one_campaign() -> None:
    anomaly = Anomaly("cpl_spike", "paid_search", "ps-generic-02", start_day=4, days=2, factor=2.5)
    base, _ = run(GeneratorConfig(seed=9, leads=1000, days=10))
    hit, _ = run(GeneratorConfig(seed=9, leads=1000, days=10, anomalies=(anomaly,)))
    b, h = spend_by_day(base, "ps-generic-02"), spend_by_day(hit, "ps-generic-02")
    for d in b:
        expected = b[d] * (2.5 if d in ("2026-01-09", "2026-01-10") else 1.0)
        assert h[d] == pytest.approx(expected, abs=0.02)
    assert spend_by_day(hit, "ps-brand-01") == spend_by_day(base, "ps-brand-01")


@pytest.mark.parametrize("kind, factor", [("conversion_drop", 0.3), ("conversion_surge", 2.0)])
def test_conversion_anomaly_scales_propensity(kind: AnomalyKind, factor: float) -> None:
    anomaly = Anomaly(kind, "events", None, start_day=3, days=4, factor=factor)
    _, base = run(GeneratorConfig(seed=9, leads=3000, days=12))
    _, hit = run(GeneratorConfig(seed=9, leads=3000, days=12, anomalies=(anomaly,)))
    assert [t.lead_id for t in base] == [t.lead_id for t in hit]
    affected = 0
    for b, h in zip(base, hit, strict=True):
        day = (date.fromisoformat(b.occurred_at[:10]) - date(2026, 1, 5)).days
        if b.channel == "events" and 3 <= day < 7:
            assert h.propensity == pytest.approx(min(0.995, b.propensity * factor))
            affected += 1
        else:
            assert h.propensity == b.propensity
    assert affected > 50


def test_drift_changes_the_propensity_function() -> None:
    before_cfg = GeneratorConfig(seed=4, leads=6000, days=40)
    drift_cfg = GeneratorConfig(seed=4, leads=6000, days=40, drift_at=0.5)
    events, drifted = run(drift_cfg)
    plain = propensities(before_cfg)
    assert list(plain) == [t.lead_id for t in drifted]
    cut = next(i for i, t in enumerate(drifted) if t.drifted)
    assert cut == pytest.approx(len(drifted) / 2, abs=1)
    assert all(plain[t.lead_id] == t.propensity for t in drifted[:cut])
    assert sum(plain[t.lead_id] != t.propensity for t in drifted[cut:]) > 0.95 * (
        len(drifted) - cut
    )
    # Demo requests mattered a lot before the drift and much less after.
    demo = {e.key: e.value["demo_requested"] for e in events
            if e.kind == "lead" and isinstance(e.value, dict)
            and e.value["event_type"] == "lead_created"}  # fmt: skip

    def gap(ts: list[LeadTruth]) -> float:
        yes = [t.propensity for t in ts if demo[t.lead_id]]
        no = [t.propensity for t in ts if not demo[t.lead_id]]
        return statistics.fmean(yes) - statistics.fmean(no)

    assert gap(drifted[cut:]) < 0.6 * gap(drifted[:cut])


def test_writers(tmp_path: Path) -> None:
    truths: list[LeadTruth] = []
    cfg = GeneratorConfig(seed=1, leads=300, days=7, bad_fraction=0.05)
    events = list(generate(cfg, truth=truths.append))
    assert write_jsonl(events, tmp_path / "e.jsonl") == len(events)
    lines = [orjson.loads(line) for line in (tmp_path / "e.jsonl").read_bytes().splitlines()]
    assert [set(x) for x in lines] == [{"kind", "key", "value"}] * len(events)
    paths = write_csv(events, tmp_path / "csv")
    assert sorted(p.name for p in paths.values()) == [
        "conversions.csv", "leads.csv", "spend.csv", "touchpoints.csv"]  # fmt: skip
    with paths["lead"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"utm_content", "phone", "demo_requested"} <= set(rows[0])
    assert {r["demo_requested"] for r in rows} <= {"true", "false", ""}
    dict_events = sum(e.kind == "lead" and isinstance(e.value, dict) for e in events)
    assert len(rows) == dict_events
    assert len(list((tmp_path / "csv").iterdir())) == 4  # the spools are gone
    assert write_truth(tmp_path / "truth.csv", truths) == len(truths)
    with (tmp_path / "truth.csv").open() as fh:
        truth_rows = list(csv.DictReader(fh))
    assert truth_rows[0].keys() == set(LeadTruth._fields)
    assert {r["converted"] for r in truth_rows} == {"0", "1"}
    with truth_writer(None) as record:
        assert record is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"leads": -1},
        {"days": 0},
        {"bad_fraction": 1.5},
        {"drift_at": 0.0},
        {"anomalies": (Anomaly("volume_spike", "tv", None, 0, 1, 2.0),)},
        {"anomalies": (Anomaly("volume_spike", "email", "ps-brand-01", 0, 1, 2.0),)},
        {"anomalies": (Anomaly("cpl_spike", "email", None, 0, 0, 2.0),)},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**kwargs)
