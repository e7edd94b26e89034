"""Every SQL query of the Grafana analytics dashboard runs against the real schema and returns rows.

Grafana's macros and the dashboard variable are replaced with concrete values
(the range of the generated data, the "All" channel and one channel), then each
query runs on chDB loaded with generated events. PromQL panels must name only
metrics that leadstream exports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry

from reporting.cache import CacheMetrics
from sinks.metrics import Metrics
from tests.dashboard import _data

GRAFANA = Path(__file__).resolve().parents[2] / "config" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "analytics" / "leadstream-analytics.json"
FROM = f"{_data.START.isoformat()} 00:00:00"
TO = f"{_data.END.isoformat()} 23:59:59"


def panels() -> list[dict[str, Any]]:
    data = json.loads(DASHBOARD.read_text())
    return [p for p in data["panels"] if p.get("type") != "row"]


def concrete(sql: str, channel: str) -> str:
    """The query as Grafana would send it for the data's range and one channel value."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 rf"\1 >= toDateTime('{FROM}', 'UTC') AND \1 <= toDateTime('{TO}', 'UTC')", sql)  # fmt: skip
    sql = re.sub(r"\$__dateFilter\((\w+)\)",
                 rf"\1 BETWEEN toDate('{FROM[:10]}') AND toDate('{TO[:10]}')", sql)  # fmt: skip
    sql = sql.replace("$__fromTime", f"toDateTime('{FROM}', 'UTC')")
    sql = sql.replace("$__toTime", f"toDateTime('{TO}', 'UTC')")
    sql = sql.replace("${channel}", channel)
    assert "$" not in sql, f"a macro is left: {sql}"
    return sql


SQL_TARGETS = [
    (p["title"], t["rawSql"]) for p in panels() for t in p["targets"] if "rawSql" in t
]  # fmt: skip


def test_the_dashboard_has_the_views() -> None:
    titles = {p["title"] for p in panels()}
    for words in ("Funnel", "ROI by channel", "Score distribution", "Band mix", "Anomalies",
                  "Model AUC", "Weekly cohorts", "cache hit ratio"):  # fmt: skip
        assert any(words in t for t in titles), words
    uids = {t["datasource"]["uid"] for p in panels() for t in p["targets"]}
    assert uids == {"clickhouse", "prometheus"}
    provisioned = {
        ds["uid"]
        for f in (GRAFANA / "provisioning" / "datasources").glob("*.yml")
        for ds in yaml.safe_load(f.read_text())["datasources"]
    }
    assert uids <= provisioned


@pytest.mark.parametrize(("title", "sql"), SQL_TARGETS, ids=[t for t, _ in SQL_TARGETS])
def test_every_sql_query_returns_rows(chdb: Client, title: str, sql: str) -> None:
    for channel in ("", "email"):
        rows = chdb.query(concrete(sql, channel)).result_rows
        assert rows, f"{title} ({channel or 'all channels'}) returned no rows"
        assert any(v not in (None, 0, "") for v in rows[0]), f"{title}: only empty values"


def test_promql_panels_use_exported_metrics() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    CacheMetrics.create(registry)
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    exported = {m.name + x for m in registry.collect() for x in suffixes}
    exprs = [t["expr"] for p in panels() for t in p["targets"] if "expr" in t]
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\b(leadstream_[a-z_]+)\b", expr))
        assert names and names <= exported, expr
