"""The dashboard's default views follow the data's own time, in a real browser.

Generated or replayed history is dated in the past, while the learner stamps its model
metrics with its own (wall) clock. The page must still open on the data (its default
range ends on the latest lead's day) and show the model's health from those metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from playwright.sync_api import Browser

from api.server import Built, ServerThread
from sinks.rows import COLUMNS, mapping_row
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_browser import (
    api,
    browser,
    form,
    open_dashboard,
    serving,
    values,
)

__all__ = ["browser"]  # the module fixture, shared with the other browser tests

pytestmark = pytest.mark.integration

MODEL = "wallclock-model"


@pytest.fixture(scope="module")
def server(
    redis_url: str, loaded: Loaded, private_chdb: Client
) -> Iterator[tuple[ServerThread, Built]]:
    now = datetime.now(UTC)  # as the learner stamps them, whatever the data's dates
    rows = [mapping_row("model_metrics", {
        "model_name": MODEL, "role": "champion", "model_version": 100 + v, "scope": "rolling",
        "recorded_at": now - timedelta(minutes=3 - v), "examples": 1000 + v, "positives": 90,
        "auc": 0.8 + 0.01 * v, "logloss": 0.3, "brier": 0.08, "threshold": 0.3,
        "precision": 0.4, "recall": 0.5, "f1": 0.44, "calibration": "[]", "rmse": None,
        "mae": None, "r2": None,
    }) for v in range(3)]  # fmt: skip
    private_chdb.insert(
        f"{_data.DB}.model_metrics", rows, column_names=list(COLUMNS["model_metrics"])
    )
    with serving(redis_url, loaded, private_chdb, "dash-time", refresh_s=60) as running:
        yield running


def test_default_views_show_the_data_and_the_model_health(
    browser: Browser, server: tuple[ServerThread, Built]
) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        open_dashboard(pg, server)
        f = form(pg)
        last_day = api(server, "/api/v1/options")["last_day"]
        assert date.fromisoformat(last_day) < datetime.now(UTC).date()  # history, in the past
        assert f["end"] == last_day  # the default range ends on the data's latest day
        assert values(pg, "#kpis .kpi")["leads"] > 0
        # The model health panel: the metrics the learner recorded by its own clock.
        pg.wait_for_selector("#model-table tbody tr")
        shown = pg.eval_on_selector_all(
            "#model-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)"
        )
        assert MODEL in shown, shown
        assert pg.locator("#model polyline").count() >= 1
        health = api(server, "/api/v1/model-health", **f)
        assert {m["model_name"] for m in health["metrics"]} >= {MODEL}
        # A range that ends before the data's last day keeps to its own recorded time.
        early = api(server, "/api/v1/model-health", start=f["start"],
                    end=(date.fromisoformat(f["start"]) + timedelta(days=1)).isoformat())  # fmt: skip
        assert MODEL not in {m["model_name"] for m in early["metrics"]}
        assert errors == []
    finally:
        context.close()
