"""The dashboard in a real browser: headless Chromium (the Debian package) driven by Playwright.

The app runs in a uvicorn thread on real chDB and Redis. The tests compare what
the page draws (each chart element carries the number it shows in data-value)
with what the API returns, change filters, drill down by clicking, and watch the
page refresh itself when data lands. Screenshots go to tests/artifacts/dashboard/.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from api.server import Built, ServerThread, build_app, serve_in_thread
from cli.demo import free_port
from config.settings import Settings
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextmanager
def serving(
    redis_url: str, loaded: Loaded, client: Client, name: str, refresh_s: float = 1
) -> Iterator[tuple[ServerThread, Built]]:
    """The app on ``client`` in a uvicorn thread; its Redis cache keys removed afterwards."""
    settings = Settings(
        redis={"url": redis_url, "key_prefix": f"{name}-{loaded.path.parent.name}"},
        clickhouse={"chdb_path": loaded.path},
        api={"auth_enabled": False, "refresh_s": refresh_s, "watermark_every_s": 0},
    )
    built = build_app(settings, client)
    thread = serve_in_thread(built.app, "127.0.0.1", free_port())
    yield thread, built
    thread.stop()
    assert built.cache.client is not None
    keys = list(built.cache.client.scan_iter(f"{settings.redis.key_prefix}:*", count=10000))
    if keys:
        built.cache.client.delete(*keys)


@pytest.fixture(scope="module")
def server(
    redis_url: str, loaded: Loaded, private_chdb: Client
) -> Iterator[tuple[ServerThread, Built]]:
    with serving(redis_url, loaded, private_chdb, "dash-browser") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: tuple[ServerThread, Built]) -> Iterator[tuple[Page, list[str]]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    pg = context.new_page()
    errors: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            errors.append(msg.text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("requestfailed", lambda req: errors.append(f"failed: {req.url}"))
    yield pg, errors
    context.close()


def api(server: tuple[ServerThread, Built], path: str, **params: str) -> Any:
    query = "&".join(f"{k}={v}" for k, v in params.items() if v)
    with urllib.request.urlopen(f"{server[0].url}{path}?{query}", timeout=30) as r:
        return json.loads(r.read())


def open_dashboard(pg: Page, server: tuple[ServerThread, Built]) -> int:
    pg.goto(server[0].url + "/")
    pg.wait_for_selector("body[data-loaded]", timeout=30_000)
    return int(pg.get_attribute("body", "data-loaded") or 0)


def wait_reload(pg: Page, after: int) -> int:
    # A selector, not wait_for_function: the page's CSP forbids evaluating strings.
    pg.wait_for_selector(f"body[data-loaded]:not([data-loaded='{after}'])", timeout=30_000)
    return int(pg.get_attribute("body", "data-loaded") or 0)


def form(pg: Page) -> dict[str, str]:
    values: dict[str, str] = pg.eval_on_selector(
        "#filters", "f => Object.fromEntries([...new FormData(f)].filter(([k, v]) => v))"
    )
    return values


def values(pg: Page, selector: str) -> dict[str, float]:
    pairs = pg.eval_on_selector_all(
        selector, "els => els.map(e => [e.dataset.key ?? e.dataset.kpi, e.dataset.value])"
    )
    return {k: float(v) for k, v in pairs if v not in ("", None)}


def test_page_shows_the_numbers_the_api_returns(
    page: tuple[Page, list[str]], server: tuple[ServerThread, Built]
) -> None:
    pg, errors = page
    open_dashboard(pg, server)
    f = form(pg)
    kpis = api(server, "/api/v1/kpis", **f)
    shown = values(pg, "#kpis .kpi")
    for name in ("leads", "mql", "sql", "won", "revenue", "spend", "cpl", "roas", "mean_score"):
        assert shown[name] == pytest.approx(kpis["current"][name]), name
    funnel = api(server, "/api/v1/funnel", **f)
    assert values(pg, "#funnel g[data-key]") == {s["stage"]: s["leads"] for s in funnel["stages"]}
    quality = api(server, "/api/v1/lead-quality", **f)
    assert values(pg, "#histogram rect[data-key]") == {
        str(i): b["leads"] for i, b in enumerate(quality["histogram"])
    }
    roi = api(server, "/api/v1/roi", by="channel", **f)
    assert values(pg, "#roi-chart g[data-key]") == {r["key"]: r["revenue"] for r in roi}
    table = pg.eval_on_selector_all(
        "#roi tbody tr[data-key]",
        "rs => rs.map(r => [r.dataset.key, ...[...r.cells].slice(1, 5).map(c => Number(c.dataset.value))])",
    )
    assert table == [[r["key"], r["leads"], r["won"], r["spend"], r["revenue"]] for r in roi]
    assert pg.locator("#anomalies tbody tr").count() == len(api(server, "/api/v1/anomalies", **f))
    assert pg.locator("#model polyline").count() == 1
    insights = api(server, "/api/v1/insights", **f)
    pg.click("#insights-run")
    pg.wait_for_selector("#insights tbody")
    shown_segments = pg.eval_on_selector_all("#insights tbody tr[data-key]", "rs => rs.length")
    assert shown_segments == min(15, len(insights["segments"]))
    pg.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == []


def test_recommendations_panel_shows_the_api_s_advice(
    page: tuple[Page, list[str]], server: tuple[ServerThread, Built]
) -> None:
    pg, errors = page
    open_dashboard(pg, server)
    pg.wait_for_selector("body[data-recommended]", timeout=60_000)
    advice = api(server, "/api/v1/recommendations", period="weekly")
    assert advice["moves"], "the fixture should have enough spend for budget moves"
    assert pg.text_content("#recommend-summary") == advice["summary"]
    shown = pg.eval_on_selector_all(
        "#recommend-moves li[data-key]",
        "ls => ls.map(l => [l.querySelector('.text').textContent, Number(l.dataset.confidence),"
        " Number(l.dataset.revenue), l.querySelector('.detail').textContent])",
    )
    assert [x[0] for x in shown] == [m["text"] for m in advice["moves"]]
    for (_, confidence, revenue, detail), m in zip(shown, advice["moves"], strict=True):
        assert confidence == m["revenue"]["probability_positive"]
        assert revenue == m["revenue"]["mean"]
        assert "confidence" in detail and "80%" in detail
    segments = pg.eval_on_selector_all(
        "#recommend-segments li[data-key]", "ls => ls.map(l => l.textContent)"
    )
    assert segments == [x["text"] for x in advice["segments"]]
    if not advice["segments"]:
        assert pg.locator("#recommend-segments li.empty").count() == 1
    seen = int(pg.get_attribute("body", "data-recommended") or 0)
    pg.select_option("#recommend-period", "monthly")
    pg.wait_for_selector(
        f"#recommend-summary:not([data-period='{advice['period_start']}/{advice['period_end']}'])"
    )
    monthly = api(server, "/api/v1/recommendations", period="monthly")
    assert pg.text_content("#recommend-summary") == monthly["summary"]
    assert int(pg.get_attribute("body", "data-recommended") or 0) == seen
    assert errors == []


def test_changing_a_filter_changes_the_charts(
    page: tuple[Page, list[str]], server: tuple[ServerThread, Built]
) -> None:
    pg, errors = page
    seq = open_dashboard(pg, server)
    before = values(pg, "#kpis .kpi")["leads"]
    pg.select_option('#filters [name="band"]', "A")
    seq = wait_reload(pg, seq)
    band_a = values(pg, "#kpis .kpi")["leads"]
    assert 0 < band_a < before
    assert band_a == api(server, "/api/v1/kpis", **form(pg))["current"]["leads"]
    pg.select_option('#filters [name="industry"]', "software")
    wait_reload(pg, seq)
    funnel = api(server, "/api/v1/funnel", **form(pg))
    assert values(pg, "#funnel g[data-key]") == {s["stage"]: s["leads"] for s in funnel["stages"]}
    assert values(pg, "#kpis .kpi")["leads"] < band_a
    pg.screenshot(path=str(ARTIFACTS / "filtered.png"), full_page=True)
    assert errors == []


def test_click_channel_then_campaign_drills_down(
    page: tuple[Page, list[str]], server: tuple[ServerThread, Built]
) -> None:
    pg, errors = page
    seq = open_dashboard(pg, server)
    pg.click("#roi tbody tr[data-key='paid_search']")
    seq = wait_reload(pg, seq)
    assert form(pg)["channel"] == "paid_search"
    f = form(pg)
    campaigns = api(server, "/api/v1/channels/paid_search/campaigns", **f)
    shown = pg.eval_on_selector_all(
        "#campaigns tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)"
    )
    assert shown == [c["key"] for c in campaigns] and len(shown) == 4
    assert pg.is_visible("#campaigns-panel") and not pg.is_visible("#leads-panel")
    campaign = campaigns[0]["key"]
    pg.click(f"#campaigns tbody tr[data-key='{campaign}']")
    wait_reload(pg, seq)
    leads = api(server, f"/api/v1/campaigns/{campaign}/leads", limit="50", **form(pg))
    shown = pg.eval_on_selector_all("#leads tbody tr[data-key]", "rs => rs.map(r => r.dataset.key)")
    assert shown == [x["lead_id"] for x in leads] and shown
    assert "@" not in pg.inner_text("#leads")
    assert "paid_search" in pg.inner_text("#crumbs") and campaign in pg.inner_text("#crumbs")
    pg.screenshot(path=str(ARTIFACTS / "drill-down.png"), full_page=True)
    assert errors == []


def test_phone_layout_fits_the_screen(browser: Browser, server: tuple[ServerThread, Built]) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = context.new_page()
    open_dashboard(pg, server)
    overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    assert pg.locator("#funnel svg").bounding_box()["width"] <= 390  # type: ignore[index]
    pg.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    context.close()


def test_live_refresh_when_data_lands(
    page: tuple[Page, list[str]], server: tuple[ServerThread, Built], private_chdb: Client
) -> None:
    pg, errors = page
    seq = open_dashboard(pg, server)
    before = values(pg, "#kpis .kpi")["leads"]
    last = _data.END.isoformat()
    private_chdb.command(
        "INSERT INTO leadstream.leads (event_id, event_type, lead_id, occurred_at, ingested_at, "
        "channel, campaign_id, email_is_free, pages_viewed, pricing_page_visits, email_opens, "
        f"email_clicks, demo_requested, attributes) SELECT concat('live-', toString(number)), "
        f"'lead_created', concat('live-', toString(number)), toDateTime64('{last} 12:00:00', 3, 'UTC'), "
        "now64(3), 'email', 'em-nurture-02', false, 1, 0, 0, 0, false, '{}' FROM numbers(7)"
    )
    server[1].analytics.refresh()
    seq = wait_reload(pg, seq)  # no click: the page polls the watermark
    pg.wait_for_selector(f"#kpi-leads[data-value='{int(before) + 7}']", timeout=30_000)
    # The recommendations panel reloads with the other views (the live loop may go on).
    pg.wait_for_selector(f"body[data-recommended]:not([data-recommended='{seq - 1}'])")
    assert pg.locator("#recommend-moves li[data-key]").count() > 0
    assert errors == []
