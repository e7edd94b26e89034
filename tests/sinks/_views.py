"""The project's real reads, run by the store's owner and through its relay, as JSON.

What ``leadstream serve`` shows (the :class:`reporting.queries.Analytics` views,
through the pool the app builds) and what ``leadstream report`` builds
(:func:`reporting.report.build_report`), over the dashboard tests' generated
events, so that the owner's answers and the relay's can be compared whole.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from config.settings import load_settings
from reporting.pool import ClientPool
from reporting.queries import Analytics, Filters
from reporting.report import build_report
from tests.dashboard import _data

DB = _data.DB
FILTERS = Filters(start=_data.START, end=_data.END)
REPORT_AT = datetime.combine(_data.END + timedelta(days=20), datetime.min.time(), UTC)


def load(client: Client) -> None:
    """The dashboard tests' events, rows and rollups (migrations already applied)."""
    _data.load(client)
    Analytics(client, DB).refresh()


def snapshot(client: Client, path: str) -> dict[str, Any]:
    """Every view and the monthly report, as plain JSON values."""
    analytics = Analytics(client, DB, ClientPool.for_client(client, chdb_handles=1))
    f = FILTERS
    views: dict[str, Any] = {
        "kpis": analytics.kpis(f),
        "funnel": analytics.funnel(f),
        "lead_quality": analytics.lead_quality(f),
        "roi_channel": analytics.roi(f, "channel"),
        "roi_campaign": analytics.roi(f, "campaign_id"),
        "roi_email": analytics.roi(f.model_copy(update={"channel": "email"}), "campaign_id"),
        "cohorts": analytics.cohorts(f),
        "anomalies": analytics.anomalies(f),
        "model_health": analytics.model_health(f),
        "leads": analytics.leads(f, limit=50),
        "options": analytics.options(),
        "data_span": analytics.data_span(),
    }
    settings = load_settings(clickhouse={"chdb_path": path, "database": DB})
    views["report"] = build_report(client, settings, "monthly", now=REPORT_AT)
    return {name: jsonable(value) for name, value in views.items()}


def jsonable(value: Any) -> Any:
    """``value`` with models, tuples and dates made JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def select_1_ms(client: Client, n: int = 200) -> float:
    """Mean milliseconds of ``SELECT 1`` on ``client`` (after a warm-up)."""
    for _ in range(10):
        client.query("SELECT 1")
    started = time.perf_counter()
    for _ in range(n):
        client.query("SELECT 1")
    return (time.perf_counter() - started) / n * 1e3
