"""Attribution models in chDB: hand-built journeys checked number by number, and
generated journeys with a known truth."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from reporting.attribution import MODELS, Attribution, AttributionTable
from sinks.clickhouse import migrate
from sinks.rows import COLUMNS, event_row

DB = "attr"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def _lead(lead_id: str, days: float, channel: str, campaign: str) -> dict[str, Any]:
    return {"event_id": f"l-{lead_id}", "event_type": "lead_created", "lead_id": lead_id,
            "occurred_at": _at(days), "channel": channel, "campaign_id": campaign,
            "pages_viewed": 1, "pricing_page_visits": 0, "email_opens": 0, "email_clicks": 0,
            "demo_requested": False}  # fmt: skip


def _touch(lead_id: str, days: float, channel: str | None, campaign: str | None) -> dict[str, Any]:
    return {"event_id": f"t-{lead_id}-{days}", "event_type": "page_view", "lead_id": lead_id,
            "occurred_at": _at(days), "channel": channel, "campaign_id": campaign}  # fmt: skip


def _stage(lead_id: str, days: float, stage: str, revenue: float | None = None) -> dict[str, Any]:
    return {"event_id": f"c-{lead_id}-{stage}", "lead_id": lead_id, "stage": stage,
            "occurred_at": _at(days), "revenue": revenue,
            "currency": "USD" if revenue else None}  # fmt: skip


EVENTS: dict[str, list[dict[str, Any]]] = {
    "leads": [
        _lead("L1", 0, "paid_search", "ps-1"),
        _lead("L2", 1, "email", "em-1"),
        _lead("L3", 0, "paid_social", "so-1"),
        _lead("L4", -200, "partners", "pa-1"),  # its creation is outside the lookback
    ],
    "touchpoints": [
        _touch("L1", 2, "email", "em-1"),
        _touch("L1", 3, "direct", None),
        _touch("L1", 5, "events", "ev-1"),
        _touch("L1", 8, "direct", None),
        _touch("L3", 3, "email", "em-2"),
        _touch("L4", 1, None, None),  # no channel: the lead's own (partners, pa-1)
    ],
    "conversions": [
        _stage("L1", 6, "sql"),
        _stage("L1", 7, "opportunity"),
        _stage("L1", 10, "won", 1000.0),
        _stage("L2", 4, "sql"),
        _stage("L4", 2, "sql"),
    ],
    "spend": [
        {"event_id": "s1", "campaign_id": "ps-1", "channel": "paid_search", "date": date(2026, 3, 3),
         "amount": 500, "currency": "USD", "occurred_at": T0},
        {"event_id": "s2", "campaign_id": "em-1", "channel": "email", "date": date(2026, 3, 3),
         "amount": 50, "currency": "USD", "occurred_at": T0},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    path: Path = tmp_path_factory.mktemp("attribution") / "chdb"
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    migrate(client, DB)
    for table, events in EVENTS.items():
        rows = [event_row(table, e, NOW) for e in events]
        client.insert(f"{DB}.{table}", rows, column_names=list(COLUMNS[table]))
    yield client
    client.close()


@pytest.fixture(scope="module")
def table(chdb: Client) -> AttributionTable:
    return Attribution(chdb, DB).table(date(2026, 3, 1), date(2026, 3, 31), lookback_days=90,
                                       half_life_days=7.0, replicates=20)  # fmt: skip


def _by(table: AttributionTable, model: str, stage: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (s, ch, _), v in table.conversions[model].items():
        if s == stage and v:
            out[ch] = round(out.get(ch, 0.0) + v, 6)
    return out


def test_rule_models_on_sql(table: AttributionTable) -> None:
    # L1: paid_search(d0), email(d2), direct(d3), events(d5) -> sql d6; L2: email -> sql;
    # L4: only its own untagged touch (d1) is within 90 days of its sql (d2).
    assert _by(table, "first_touch", "sql") == {"paid_search": 1, "email": 1, "partners": 1}
    assert _by(table, "last_touch", "sql") == {"events": 1, "email": 1, "partners": 1}
    assert _by(table, "last_non_direct", "sql") == {"events": 1, "email": 1, "partners": 1}
    assert _by(table, "linear", "sql") == {"paid_search": 0.25, "email": 1.25, "direct": 0.25,
                                           "events": 0.25, "partners": 1}  # fmt: skip
    assert _by(table, "position_based", "sql") == {
        "paid_search": 0.4,
        "email": 1.1,
        "direct": 0.1,
        "events": 0.4,
        "partners": 1,
    }
    ages = {"paid_search": 6, "email": 4, "direct": 3, "events": 1}  # days before the sql
    w = {c: 2 ** (-d / 7) for c, d in ages.items()}
    decay = _by(table, "time_decay", "sql")
    for c, v in w.items():
        expected = v / sum(w.values()) + (1.0 if c == "email" else 0.0)
        assert decay[c] == pytest.approx(expected, abs=1e-6)


def test_rule_models_on_won_revenue(table: AttributionTable) -> None:
    # L1 won at d10: the direct touch of d8 is now its last touch
    assert _by(table, "last_touch", "won") == {"direct": 1}
    assert _by(table, "last_non_direct", "won") == {"events": 1}
    rev = {ch: round(v, 6) for (ch, _), v in table.revenue["position_based"].items() if v}
    assert rev == {
        "paid_search": 400,
        "direct": pytest.approx(400 + 200 / 3),
        "email": pytest.approx(200 / 3),
        "events": pytest.approx(200 / 3),
    }


def test_view_costs_and_campaigns(table: AttributionTable) -> None:
    v = table.view("first_touch")
    rows = {r.key: r for r in v.channels}
    assert v.totals == {"sql": 3, "opportunity": 1, "won": 1, "revenue": 1000}
    ps = rows["paid_search"]
    assert (ps.leads, ps.sql, ps.won, ps.revenue, ps.spend) == (1, 1, 1, 1000, 500)
    assert (ps.cost_per_sql, ps.cost_per_won, ps.roi, ps.share) == (500, 500, 1, 1)
    assert rows["email"].cost_per_sql == 50 and rows["email"].roi == -1
    camps = {r.key: r for r in table.view("linear").campaigns}
    assert camps["em-1"].sql == 1.25 and "em-2" not in camps  # it touched no conversion
    assert camps["(none)"].channel == "direct"


def test_every_model_conserves_conversions(table: AttributionTable) -> None:
    for model in MODELS:
        v = table.view(model)
        for stage, key in (("sql", "sql"), ("opportunity", "opportunities"), ("won", "won")):
            total = sum(getattr(r, key) for r in v.channels)  # rows are rounded to 0.001
            assert total == pytest.approx(v.totals[stage], abs=0.01), (model, stage)
        assert sum(r.revenue for r in v.channels) == pytest.approx(1000, abs=0.05), model


def test_unknown_inputs_are_refused(chdb: Client, table: AttributionTable) -> None:
    with pytest.raises(ValueError, match="before start"):
        Attribution(chdb, DB).table(date(2026, 3, 2), date(2026, 3, 1))
    with pytest.raises(ValueError, match="unknown model"):
        table.view("rule_of_thumb")  # type: ignore[arg-type]


def test_comparison_names_the_biggest_move(table: AttributionTable) -> None:
    c = table.compare("last_touch", "last_non_direct")
    assert c.moves[0].channel in ("direct", "events")
    assert abs(c.moves[0].change) == 1.0
    assert math.isclose(sum(m.change for m in c.moves), 0.0, abs_tol=1e-9)


def test_a_period_without_conversions_is_empty(chdb: Client) -> None:
    table = Attribution(chdb, DB).table(date(2027, 1, 1), date(2027, 1, 31), replicates=10)
    for model in MODELS:
        v = table.view(model)
        assert v.totals == {"sql": 0, "opportunity": 0, "won": 0, "revenue": 0}
        assert all(r.sql == r.won == r.revenue == 0 for r in v.channels)
        assert v.intervals == {} or all(not rows for rows in v.intervals.values())


def test_a_replayed_batch_is_not_counted_twice(chdb: Client, table: AttributionTable) -> None:
    db = "attr_replayed"
    migrate(chdb, db)
    for ingested in (NOW, NOW + timedelta(minutes=5)):  # at-least-once: the batch again
        for name, events in EVENTS.items():
            rows = [event_row(name, e, ingested) for e in events]
            chdb.insert(f"{db}.{name}", rows, column_names=list(COLUMNS[name]))
    again = Attribution(chdb, db).table(date(2026, 3, 1), date(2026, 3, 31), replicates=20)
    for model in MODELS:
        assert again.view(model) == table.view(model), model


def test_a_tiny_half_life_gives_the_last_touch_its_credit(chdb: Client) -> None:
    """Touches hundreds of half-lives old once decayed to 0/0 (NaN in the API's answer)."""
    table = Attribution(chdb, DB).table(date(2026, 3, 1), date(2026, 3, 31), lookback_days=90,
                                        half_life_days=0.005, replicates=5)  # fmt: skip
    decay = _by(table, "time_decay", "sql")
    assert all(math.isfinite(v) for v in decay.values())
    credited = {c: v for c, v in decay.items() if v}  # older touches: below 1e-6
    assert credited == pytest.approx(_by(table, "last_touch", "sql"), abs=1e-6)
