"""The attribution panel in headless Chromium: switch the model, compare two, drill into campaigns.

The app runs in a uvicorn thread on real chDB (generated multi-channel journeys) and
Redis; each table cell carries the number the API returned in data-value.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.server import Built, ServerThread, serve_in_thread
from cli.demo import free_port

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "attribution"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def server(built: Built) -> Iterator[ServerThread]:
    thread = serve_in_thread(built.app, "127.0.0.1", free_port())
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def page(server: ServerThread) -> Iterator[tuple[Page, list[str]]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        pg = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        pg.goto(server.url + "/")
        pg.wait_for_selector("#attribution-panel[data-loaded]", timeout=60_000)
        yield pg, errors
        browser.close()


def api(server: ServerThread, **params: str) -> Any:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v})
    with urllib.request.urlopen(f"{server.url}/api/v1/attribution?{query}", timeout=60) as r:
        return json.loads(r.read())


def _range(pg: Page) -> dict[str, str]:
    return {
        "start": pg.input_value('#filters [name="start"]'),
        "end": pg.input_value('#filters [name="end"]'),
    }


def _reload(pg: Page, action: Any) -> None:
    before = pg.get_attribute("#attribution-panel", "data-loaded")
    action()
    pg.wait_for_selector(
        f"#attribution-panel[data-loaded]:not([data-loaded='{before}'])", timeout=60_000
    )


def _column(pg: Page, table: str, cls: str, nth: int = 0) -> dict[str, float]:
    pairs = pg.eval_on_selector_all(
        f"{table} tbody tr[data-key]",
        f"rs => rs.map(r => [r.dataset.key, r.querySelectorAll('td.{cls}')[{nth}]?.dataset.value])",
    )
    return {k: float(v) for k, v in pairs if v not in ("", None)}


def _expected(view: dict[str, Any], key: str, rows: str = "channels") -> dict[str, float]:
    return {r["key"]: r[key] for r in view[rows]}


def test_model_switch_comparison_and_drill_down(
    page: tuple[Page, list[str]], server: ServerThread
) -> None:
    pg, errors = page
    rng = _range(pg)
    # the default: the data-driven model, with its intervals
    body = api(server, **rng, model="data_driven")
    assert _column(pg, "#attr-table", "share") == _expected(body["model"], "share")
    assert _column(pg, "#attr-table", "sql") == _expected(body["model"], "sql")
    shown = _column(pg, "#attr-table", "interval")
    assert shown == {i["channel"]: i["share"] for i in body["model"]["intervals"]["sql"]}

    # switch the model
    _reload(pg, lambda: pg.select_option("#attr-model", "last_touch"))
    last = api(server, **rng, model="last_touch")
    assert _column(pg, "#attr-table", "won") == _expected(last["model"], "won")
    assert _column(pg, "#attr-table", "revenue") == _expected(last["model"], "revenue")
    assert pg.locator("#attr-table td.interval").count() == 0  # rule models have none
    assert _column(pg, "#attr-table", "share") != _expected(body["model"], "share")

    # compare with the data-driven model, side by side
    _reload(pg, lambda: pg.select_option("#attr-compare", "data_driven"))
    both = api(server, **rng, model="last_touch", compare="data_driven")
    assert _column(pg, "#attr-table", "share", 0) == _expected(both["model"], "share")
    compare = _expected(both["compare"], "share")
    assert {
        k: v for k, v in _column(pg, "#attr-table", "share", 1).items() if k in compare
    } == compare
    change = _column(pg, "#attr-table", "change")
    top = both["moves"][0]
    assert change[top["channel"]] == pytest.approx(top["change"], abs=1e-4)
    assert top["channel"] in pg.inner_text("#attr-moves")
    pg.screenshot(path=str(ARTIFACTS / "comparison.png"), full_page=True)

    # drill into a channel's campaigns
    assert pg.is_hidden("#attr-campaigns-wrap")
    _reload(pg, lambda: pg.click("#attr-table tbody tr[data-key='email']"))
    drilled = api(server, **rng, model="last_touch", compare="data_driven", channel="email")
    assert pg.is_visible("#attr-campaigns-wrap")
    assert "email" in pg.inner_text("#attr-campaigns-title")
    campaigns = _column(pg, "#attr-campaigns", "sql", 0)
    assert campaigns == _expected(drilled["model"], "sql", "campaigns")
    assert set(campaigns) <= {"em-nurture-02", "em-newsletter-01", "em-product-03", "(none)"}
    assert len(campaigns) >= 2
    pg.screenshot(path=str(ARTIFACTS / "campaigns.png"), full_page=True)
    assert errors == []
