"""A chDB store with eight weeks of generated traffic, plus anomalies and model metrics.

Built once per session (ingested the way the worker writes events); each test that
needs ClickHouse opens its own client on it and closes it (chDB: one open data
directory per process). The report of week 8 is built once and shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from config.settings import Settings
from reporting._period import Period
from reporting.exports import export
from reporting.queries import Analytics
from reporting.report import Report, build_report
from sinks.clickhouse import connect, migrate
from streaming.synthetic import GeneratorConfig
from tests.insights._data import Loaded, chdb_settings, load_generated

PERIOD = Period(kind="weekly", start=date(2026, 2, 16), end=date(2026, 2, 22))
AUC_START, AUC_END = 0.712, 0.741


@dataclass
class Store:
    settings: Settings
    loaded: Loaded
    report: Report
    files: list[Path]


def _extras(client: Client, db: str) -> None:
    """Two anomalies (one critical) and two champion metrics inside the report week."""
    t0, t1 = datetime(2026, 2, 17, 10, tzinfo=UTC), datetime(2026, 2, 20, 9, tzinfo=UTC)
    anomalies = [
        ["a1", "volume_spike", "channel=paid_social/lead_volume", "channel", "paid_social",
         "lead_volume", t0, t0, 90.0, 30.0, 20.0, 40.0, "critical", "up", False,
         "paid_social leads 3.0x the expected 30", t0],
        ["a2", "cpl_spike", "campaign=so-meta-02/cost_per_lead", "campaign", "so-meta-02",
         "cost_per_lead", t1, t1, 80.0, 30.0, 20.0, 40.0, "warning", "up", False,
         "so-meta-02 cost per lead 80 against 30", t1],
    ]  # fmt: skip
    client.insert(f"{db}.anomalies", anomalies, column_names=[
        "anomaly_id", "kind", "series", "dimension", "dimension_value", "metric", "window_start",
        "window_end", "value", "expected", "expected_low", "expected_high", "severity",
        "direction", "opportunity", "description", "detected_at"])  # fmt: skip
    metrics = [["logistic", "champion", 3, "rolling", t0, 1500, 200, AUC_START],
               ["logistic", "champion", 9, "rolling", t1, 2500, 330, AUC_END]]  # fmt: skip
    client.insert(f"{db}.model_metrics", metrics, column_names=[
        "model_name", "role", "model_version", "scope", "recorded_at", "examples", "positives",
        "auc"])  # fmt: skip


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("reports")
    settings = chdb_settings(folder / "chdb")
    loaded = load_generated(settings, GeneratorConfig(seed=11, leads=5000, days=56))
    client = connect(settings.clickhouse)
    try:
        migrate(client, settings.clickhouse.database)
        _extras(client, settings.clickhouse.database)
        Analytics(client, settings.clickhouse.database).refresh()
        report = build_report(client, settings, "weekly", PERIOD)
    finally:
        client.close()
    files = export(report, ("pdf", "html", "csv", "xlsx"), folder / "out")
    return Store(settings, loaded, report, files)


@pytest.fixture
def client(store: Store) -> Iterator[Client]:
    c = connect(store.settings.clickhouse)
    yield c
    c.close()
