"""A browser without a session gets a login page; an API client keeps the JSON 401.

Both see the same status (401) and the same ``WWW-Authenticate``; only a request that
prefers HTML (a browser's navigation) gets the page, whose form opens the existing
``/login?token=…``. In Chromium, logging in through that page lands on the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient
from playwright.sync_api import Browser

from api._errors import Error
from api.server import Built, ServerThread, build_app, serve_in_thread
from cli.demo import free_port
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_api import RANGE, TOKEN, settings_for
from tests.dashboard.test_dashboard_browser import ARTIFACTS, browser

__all__ = ["browser"]  # the module fixture, shared with the other browser tests

pytestmark = pytest.mark.integration

#: What Chromium sends when it opens a page.
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
}


@pytest.fixture(scope="module")
def built(redis_url: str, loaded: Loaded, chdb: Client) -> Iterator[Built]:
    # Token only, as `leadstream serve` is usually run: no basic prompt in the browser.
    b = build_app(settings_for(redis_url, "login-page", loaded, username=None, password=None), chdb)
    yield b
    b.close()


@pytest.fixture(scope="module")
def client(built: Built) -> TestClient:
    return TestClient(built.app)


def test_a_browser_without_a_session_gets_a_login_page(client: TestClient) -> None:
    for path in ("/", "/openapi.json", "/api/v1/kpis"):
        r = client.get(path, headers=BROWSER)
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "x-frame-options" in r.headers and "form-action 'self'" in r.headers[
            "content-security-policy"]  # fmt: skip
        page = r.text
        assert '<form id="login" method="get" action="/login">' in page
        assert 'name="token"' in page and "leadstream serve" in page
        assert "/login?token=" in page and TOKEN not in page
    # The form's request: the existing login, its cookie, then the dashboard.
    r = client.get("/login", params={"token": TOKEN}, headers=BROWSER, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.get("/", headers=BROWSER).status_code == 200
    client.cookies.clear()


def test_a_browser_s_wrong_token_shows_the_page_again(client: TestClient) -> None:
    r = client.get("/login", params={"token": "wrong"}, headers=BROWSER, follow_redirects=False)
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "That token was not accepted." in r.text and 'name="token"' in r.text
    assert "set-cookie" not in r.headers
    bare = client.get("/login", headers=BROWSER)  # the page's own address
    assert bare.status_code == 200 and 'name="token"' in bare.text


@pytest.mark.parametrize(
    "accept", [None, "application/json", "*/*", "text/html;q=0.5, application/json"]
)
def test_an_api_client_keeps_the_json_401(client: TestClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    r = client.get("/api/v1/kpis", params=RANGE, headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    body = Error.model_validate(r.json())
    assert body.detail.startswith("authentication required")
    wrong = client.get("/login", params={"token": "wrong"}, headers=headers)
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong token"
    missing = client.get("/login", headers=headers)
    assert missing.status_code == 422 and Error.model_validate(missing.json()).errors


@pytest.fixture(scope="module")
def server(built: Built) -> Iterator[ServerThread]:
    thread = serve_in_thread(built.app, "127.0.0.1", free_port())
    yield thread
    thread.stop()


def test_logging_in_through_the_page_opens_the_dashboard(
    browser: Browser, server: ServerThread
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        response = pg.goto(server.url + "/")
        assert response is not None and response.status == 401
        assert pg.locator("h1").text_content() == "Sign in to the leadstream dashboard"
        assert pg.locator("form#login input[name=token]").is_visible()
        pg.screenshot(path=str(ARTIFACTS / "login.png"))
        # The page's inline style applies (its hash is in the page's CSP): the button is blue.
        colour = pg.eval_on_selector("button", "b => getComputedStyle(b).backgroundColor")
        assert colour == "rgb(47, 111, 222)"
        errors.clear()  # the 401 itself is logged as a failed resource
        pg.fill("input[name=token]", "wrong")
        pg.click("button[type=submit]")
        pg.wait_for_selector("p.error")
        assert "not accepted" in (pg.text_content("p.error") or "")
        errors.clear()
        pg.fill("input[name=token]", TOKEN)
        pg.click("button[type=submit]")
        pg.wait_for_selector("body[data-loaded]", timeout=30_000)
        assert pg.url == server.url + "/"
        assert pg.locator("#kpis .kpi").count() > 0
        assert errors == []
    finally:
        context.close()
