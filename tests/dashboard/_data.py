"""Generated events, ingested as the worker ingests them, written with the real sinks.

Events come from :mod:`streaming.synthetic`; each is validated, normalised and
de-identified by the real :class:`streaming.ingest.Ingestor` and written by the
real :class:`sinks.clickhouse.ClickHouseSink` with :func:`sinks.rows.event_row`.
Each lead is scored with the generator's hidden propensity (a realistic spread
of scores without training a model), so the expected numbers can be computed
here in Python from the same events and compared with what the views return.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import ClickHouseSink
from sinks.rows import COLUMNS, TABLE_FOR_KIND, Row, event_row, mapping_row
from streaming import synthetic
from streaming.ingest import Accepted, Ingestor

DB = "leadstream"
KEY = b"dashboard-test-key-0123456789"
CONFIG = synthetic.GeneratorConfig(seed=11, leads=1500, days=40, duplicate_fraction=0.02)
START = CONFIG.start
END = START + timedelta(days=CONFIG.days - 1)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def band(score: float) -> str:
    """The default bands (0.5 / 0.25 / 0.1)."""
    return "A" if score >= 0.5 else "B" if score >= 0.25 else "C" if score >= 0.1 else "D"


@dataclass
class Expected:
    """Numbers computed from the generated events, per channel and overall."""

    leads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    won: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sql: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    revenue: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    spend: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bands: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lead_rows: list[Row] = field(default_factory=list)
    conversion_rows: list[Row] = field(default_factory=list)


def load(client: Client) -> Expected:
    """Ingest and write the generated events; returns what the views should show."""
    truth: dict[str, float] = {}
    ingestors = {kind: Ingestor(f"{kind}.raw", kind, ("email", "phone", "first_name",
                                "last_name", "name", "ip_address"), KEY)
                 for kind in TABLE_FOR_KIND}  # fmt: skip
    rows: dict[str, list[Row]] = defaultdict(list)
    accepted: list[Accepted] = []
    for i, e in enumerate(
        synthetic.generate(CONFIG, truth=lambda t: truth.__setitem__(t.lead_id, t.propensity))
    ):
        raw = orjson.dumps(e.value) if isinstance(e.value, dict) else e.value
        result = ingestors[e.kind].ingest(raw, NOW, 0, i)
        if isinstance(result, Accepted):
            accepted.append(result)
            rows[TABLE_FOR_KIND[e.kind]].append(
                event_row(TABLE_FOR_KIND[e.kind], result.event, NOW)
            )
    expected = Expected()
    channel_of: dict[str, str] = {}
    created: dict[str, date] = {}
    seen: set[str] = set()
    for a in accepted:
        if a.event_id in seen:  # re-sent duplicates
            continue
        seen.add(a.event_id)
        ev = a.event
        if a.kind == "lead":
            score = truth[a.key]
            rows["scored_leads"].append(mapping_row("scored_leads", {
                "event_id": a.event_id, "lead_id": a.key, "occurred_at": a.occurred_at,
                "scored_at": NOW, "channel": ev["channel"], "campaign_id": ev.get("campaign_id") or "",
                "score": score, "band": band(score), "expected_value": round(score * 9000, 2),
                "model_version": 1,
                "reasons": orjson.dumps([{"feature": "pricing_page_visits", "value": 2.0,
                                          "contribution": 0.4, "text": "2 pricing-page visits: raises the score"}]).decode(),
            }))  # fmt: skip
            if ev["event_type"] == "lead_created":
                channel_of[a.key] = ev["channel"]
                created[a.key] = a.occurred_at.date()
                expected.leads[ev["channel"]] += 1
                expected.bands[band(score)] += 1
    reached: dict[str, set[str]] = defaultdict(set)
    revenue: dict[str, float] = {}
    for a in accepted:
        if a.kind == "conversion":
            reached[a.key].add(a.event["stage"])
            if a.event["stage"] == "won" and a.event.get("revenue") is not None:
                revenue[a.key] = float(a.event["revenue"])
        if a.kind == "spend":
            expected.spend[a.event["channel"]] += 0.0  # summed below, once per campaign-day
    spend_seen: set[tuple[str, str]] = set()
    for a in accepted:
        if a.kind == "spend" and (a.event["campaign_id"], str(a.event["date"])) not in spend_seen:
            spend_seen.add((a.event["campaign_id"], str(a.event["date"])))
            expected.spend[a.event["channel"]] += float(a.event["amount"])
    for lead_id, stages in reached.items():
        ch = channel_of.get(lead_id)
        if ch is None:
            continue
        if stages & {"sql", "opportunity", "won"}:
            expected.sql[ch] += 1
        if "won" in stages:
            expected.won[ch] += 1
            expected.revenue[ch] += revenue.get(lead_id, 0.0)
    lock = threading.Lock()
    for table, table_rows in rows.items():
        asyncio.run(ClickHouseSink(table, client, DB, lock).write(table_rows))
    expected.lead_rows = rows["leads"]
    expected.conversion_rows = rows["conversions"]
    _model_rows(client)
    return expected


def replay(client: Client, expected: Expected) -> None:
    """Write the lead and conversion rows again, as a replayed batch would."""
    lock = threading.Lock()
    asyncio.run(ClickHouseSink("leads", client, DB, lock).write(expected.lead_rows))
    asyncio.run(ClickHouseSink("conversions", client, DB, lock).write(expected.conversion_rows))


def _model_rows(client: Client) -> None:
    """A few anomalies and model metrics, as the anomaly agents and the learner write them."""
    anomalies = [mapping_row("anomalies", {
        "anomaly_id": f"an-{i}", "kind": kind, "series": f"channel={ch}/lead_volume",
        "dimension": "channel", "dimension_value": ch, "metric": "lead_volume",
        "window_start": datetime.combine(START + timedelta(days=10 + i), datetime.min.time(), UTC),
        "window_end": datetime.combine(START + timedelta(days=11 + i), datetime.min.time(), UTC),
        "value": 80.0 + i, "expected": 40.0, "expected_low": 30.0, "expected_high": 50.0,
        "severity": "warning", "direction": "up", "opportunity": False,
        "description": f"{ch}: lead volume {80 + i} against 30–50 expected",
        "detected_at": NOW, "inserted_at": NOW,
    }) for i, (kind, ch) in enumerate([("volume_spike", "paid_social"), ("volume_drop", "email")])]  # fmt: skip
    metrics = [mapping_row("model_metrics", {
        "model_name": "logreg", "role": "champion", "model_version": v, "scope": "rolling",
        "recorded_at": datetime.combine(START + timedelta(days=2 * v), datetime.min.time(), UTC),
        "examples": 100 * v, "positives": 12 * v, "auc": 0.6 + 0.01 * v, "logloss": 0.4,
        "brier": 0.1, "threshold": 0.3, "precision": 0.4, "recall": 0.5, "f1": 0.44,
        "calibration": "[]", "rmse": None, "mae": None, "r2": None,
    }) for v in range(1, 12)]  # fmt: skip
    for table, table_rows in (("anomalies", anomalies), ("model_metrics", metrics)):
        client.insert(f"{DB}.{table}", table_rows, column_names=list(COLUMNS[table]))


def totals(expected: Expected) -> dict[str, Any]:
    """Overall expected numbers."""
    return {
        "leads": sum(expected.leads.values()),
        "won": sum(expected.won.values()),
        "sql": sum(expected.sql.values()),
        "revenue": sum(expected.revenue.values()),
        "spend": sum(expected.spend.values()),
    }
