"""What a newcomer reads on the dashboard, in a real browser: chart axes and keys, whole
tables, and the two AUCs named for what they are.

The per-day chart shows two units (leads, spend), each on its own labelled axis with a
key naming every line; the anomalies table shows its last column at common widths; the
model panel names the learner's prequential AUC and shows the published scores' AUC
against outcomes beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client
from playwright.sync_api import Browser, Page

from api.server import Built, ServerThread
from sinks.rows import COLUMNS, mapping_row
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_browser import (
    ARTIFACTS,
    api,
    browser,
    form,
    open_dashboard,
    serving,
)

__all__ = ["browser"]  # the module fixture, shared with the other browser tests

pytestmark = pytest.mark.integration


#: Published scores and outcomes of four leads: 3 of the 4 (converted, not) pairs are
#: ranked right, so the published scores' AUC is 0.75.
PUBLISHED = [("pub-1", 1, 0.9), ("pub-2", 0, 0.8), ("pub-3", 1, 0.3), ("pub-4", 0, 0.2)]


@pytest.fixture(scope="module")
def server(
    redis_url: str, loaded: Loaded, private_chdb: Client
) -> Iterator[tuple[ServerThread, Built]]:
    now = datetime.now(UTC)  # the scorer's clock, as for the learner's metrics
    rows = [mapping_row("training_examples", {
        "lead_id": lead, "label": label, "score": score, "model_version": 3,
        "scored_at": now - timedelta(minutes=5), "labelled_at": now, "revenue": None,
    }) for lead, label, score in PUBLISHED]  # fmt: skip
    private_chdb.insert(
        f"{_data.DB}.training_examples", rows, column_names=list(COLUMNS["training_examples"])
    )
    with serving(redis_url, loaded, private_chdb, "dash-layout", refresh_s=60) as running:
        yield running


@pytest.fixture(params=[1280, 1024], ids=["1280px", "1024px"])
def page(
    request: pytest.FixtureRequest, browser: Browser, server: tuple[ServerThread, Built]
) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": request.param, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    open_dashboard(pg, server)
    yield pg
    context.close()
    assert errors == []


def texts(pg: Page, selector: str) -> list[str]:
    found: list[str] = pg.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")
    return found


def test_per_day_chart_has_labelled_axes_and_a_key(page: Page) -> None:
    left = texts(page, "#trend .axis-y.left text.tick")
    right = texts(page, "#trend .axis-y.right text.tick")
    assert len(left) >= 3 and len(right) >= 3, (left, right)
    assert all(t.strip() for t in left + right)
    # Ticks are numbers rising upwards: the leads axis starts at 0.
    assert left[0] == "0" and right[0] == "0"
    assert texts(page, "#trend .axis-y .axis-title") == ["leads", "spend"]
    days = texts(page, "#trend .axis-x text.tick")
    assert len(days) >= 2 and all(any(m in d for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")) for d in days), days  # fmt: skip
    lines = page.eval_on_selector_all("#trend polyline", "ls => ls.map(l => l.dataset.key)")
    key = page.eval_on_selector_all("#trend .key li", "ls => ls.map(l => l.dataset.series)")
    assert lines == key == ["leads per day", "spend per day"]
    assert texts(page, "#trend .key li") == [
        "leads per day (left axis)", "spend per day (right axis)"]  # fmt: skip
    # The leads line ends where its axis says: its highest point sits at or below the top tick.
    box = page.locator("#trend svg").bounding_box()
    assert box is not None and box["width"] <= page.viewport_size["width"]  # type: ignore[index]


def test_model_chart_names_its_line_and_has_an_auc_axis(page: Page) -> None:
    assert texts(page, "#model .axis-y.left text.tick")[0] == "0.50"
    assert texts(page, "#model .axis-y.left text.tick")[-1] == "1.00"
    assert texts(page, "#model .key li") == ["logreg: learner's rolling (prequential) AUC"]


@pytest.mark.parametrize(("table", "last"), [("anomalies", "severity"), ("model-table", "Brier")])
def test_tables_show_their_last_column(page: Page, table: str, last: str) -> None:
    page.wait_for_selector(f"#{table} tbody tr[data-key]")
    head = page.locator(f"#{table} thead th").last
    assert head.text_content() == last
    cell = head.bounding_box()
    wrap = page.locator(f"#{table}").locator("xpath=..").bounding_box()
    width = page.viewport_size["width"]  # type: ignore[index]
    assert cell is not None and wrap is not None
    assert (
        wrap["x"] - 0.5 <= cell["x"]
        and cell["x"] + cell["width"] <= wrap["x"] + wrap["width"] + 0.5
    )
    assert cell["x"] + cell["width"] <= width
    # Nothing scrolls sideways: every column is in view without scrolling.
    hidden = page.eval_on_selector(
        f"#{table}", "t => t.parentElement.scrollWidth - t.parentElement.clientWidth"
    )
    assert hidden <= 1
    page.locator(f"#{table}").screenshot(path=str(ARTIFACTS / f"{table}-{width}.png"))


def test_model_table_names_the_learner_s_auc_and_explains_the_other(
    page: Page, server: tuple[ServerThread, Built]
) -> None:
    head = texts(page, "#model-table thead th")
    assert "learner's prequential AUC" in head and "AUC" not in head
    tip = page.get_attribute("#model-table thead th:nth-child(6)", "title") or ""
    assert "test-then-train" in tip and "0.5 is chance" in tip
    caption = page.text_content("#model-caption") or ""
    for words in ("learner's rolling (prequential) AUC", "published scores' AUC against outcomes",
                  "leadstream_published_scores_roc_auc", "0.5 is chance"):  # fmt: skip
        assert words in " ".join(caption.split()), words
    # The other AUC, shown beside it: the published scores against the outcomes.
    published = api(server, "/api/v1/model-health", **form(page))["published"]
    assert published == {"examples": 4, "positives": 2, "auc": pytest.approx(0.75)}
    shown = page.locator("#model-published")
    assert shown.get_attribute("data-value") == "0.75"
    assert (shown.text_content() or "").startswith(
        "Published scores' AUC against outcomes: 0.750 over 4 labelled leads"
    )
    assert "0.5 is chance" in (shown.get_attribute("title") or "")
