"""Browser login: the session cookie is Secure over TLS, and failed attempts are limited."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.server import build_app
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_api import TOKEN, settings_for

pytestmark = pytest.mark.integration
PEER = "testclient"  # the peer address TestClient reports


def app_for(redis_url: str, loaded: Loaded, chdb: Client, **api: object) -> TestClient:
    built = build_app(settings_for(redis_url, "login", loaded, **api), chdb)
    return TestClient(built.app)


def cookie_of(client: TestClient, headers: dict[str, str] | None = None) -> str:
    r = client.get("/login", params={"token": TOKEN}, headers=headers, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["set-cookie"]


def test_the_cookie_is_secure_over_tls_or_behind_a_trusted_proxy_that_says_so(
    redis_url: str, loaded: Loaded, chdb: Client
) -> None:
    plain = app_for(redis_url, loaded, chdb)
    assert "Secure" not in cookie_of(plain)  # loopback over HTTP: a Secure cookie would be lost
    # a forged header from a peer that is not a trusted proxy changes nothing
    assert "Secure" not in cookie_of(plain, {"X-Forwarded-Proto": "https"})
    tls = TestClient(plain.app, base_url="https://testserver")
    assert "Secure" in cookie_of(tls)
    proxied = app_for(redis_url, loaded, chdb, trusted_proxies=[PEER])
    assert "Secure" in cookie_of(proxied, {"X-Forwarded-Proto": "https"})
    assert "Secure" not in cookie_of(proxied, {"X-Forwarded-Proto": "http"})


def test_failed_logins_are_limited_per_client(redis_url: str, loaded: Loaded, chdb: Client) -> None:
    client = app_for(redis_url, loaded, chdb, login_attempts=3, trusted_proxies=[PEER])
    alice = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(3):
        r = client.get("/login", params={"token": "guess"}, headers=alice, follow_redirects=False)
        assert r.status_code == 401
    r = client.get("/login", params={"token": TOKEN}, headers=alice, follow_redirects=False)
    assert r.status_code == 429  # even the right token: the limit is checked first
    assert 1 <= int(r.headers["retry-after"]) <= 300
    assert "too many failed logins" in r.json()["detail"]
    assert "x-frame-options" in r.headers
    bob = {"X-Forwarded-For": "198.51.100.9, 203.0.113.250"}  # another client, another count
    assert "leadstream_session" in cookie_of(client, bob)


def test_forwarded_addresses_are_ignored_from_untrusted_peers(
    redis_url: str, loaded: Loaded, chdb: Client
) -> None:
    client = app_for(redis_url, loaded, chdb, login_attempts=2)
    for forged in ("192.0.2.1", "192.0.2.2"):  # each guess claims another address
        r = client.get("/login", params={"token": "guess"},
                       headers={"X-Forwarded-For": forged}, follow_redirects=False)  # fmt: skip
        assert r.status_code == 401
    r = client.get("/login", params={"token": "guess"},
                   headers={"X-Forwarded-For": "192.0.2.3"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 429
