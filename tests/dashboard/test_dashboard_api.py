"""The JSON API on real chDB and Redis: authentication, limits, headers, OpenAPI and the cache."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import redis
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api._security import Authenticator
from api.server import Built, build_app
from config.settings import ApiSettings, Settings
from reporting._period import Period
from reporting.queries import Analytics
from reporting.recommend import recommendations
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded

pytestmark = pytest.mark.integration
TOKEN = "api-test-token-0123456789"
KPIS, RECOMMEND = "/api/v1/kpis", "/api/v1/recommendations"
RANGE = {"start": _data.START.isoformat(), "end": _data.END.isoformat()}


def settings_for(redis_url: str, run_id: str, loaded: Loaded, **api: object) -> Settings:
    return Settings(
        redis={"url": redis_url, "key_prefix": f"dash-{run_id}"},
        clickhouse={"chdb_path": loaded.path},
        api={"token": TOKEN, "username": "ana", "password": "pass-0123456789",
             "watermark_every_s": 0, **api},
    )  # fmt: skip


@pytest.fixture
def built(redis_url: str, run_id: str, loaded: Loaded, chdb: Client) -> Iterator[Built]:
    built = build_app(settings_for(redis_url, run_id, loaded), chdb)
    yield built
    assert built.cache.client is not None
    keys = list(built.cache.client.scan_iter(f"dash-{run_id}:*", count=10000))
    if keys:
        built.cache.client.delete(*keys)


@pytest.fixture
def client(built: Built) -> TestClient:
    return TestClient(built.app)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_authentication_is_required(client: TestClient) -> None:
    for path in ("/", "/api/v1/kpis", "/openapi.json", "/static/dashboard.js"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"].startswith("Basic")
    assert client.get("/api/v1/kpis", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/kpis", params=RANGE, headers=auth()).status_code == 200
    basic = base64.b64encode(b"ana:pass-0123456789").decode()
    assert client.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"ana:wrong").decode()
    assert client.get("/", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_browser_login_sets_a_session_cookie_not_the_token(client: TestClient) -> None:
    assert (
        client.get("/login", params={"token": "wrong"}, follow_redirects=False).status_code == 401
    )
    r = client.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    assert client.get("/api/v1/funnel", params=RANGE).status_code == 200  # the cookie is kept


def test_credentials_must_exist_unless_auth_is_off() -> None:
    with pytest.raises(ValueError, match="LEADSTREAM_API__TOKEN"):
        Authenticator(ApiSettings())
    assert Authenticator(ApiSettings(auth_enabled=False)).enabled is False


def test_auth_off_for_the_demo(redis_url: str, run_id: str, loaded: Loaded, chdb: Client) -> None:
    built = build_app(settings_for(redis_url, run_id, loaded, auth_enabled=False, token=None), chdb)
    assert TestClient(built.app).get("/api/v1/kpis", params=RANGE).status_code == 200


def test_security_headers(client: TestClient) -> None:
    for r in (client.get("/api/v1/kpis", params=RANGE, headers=auth()), client.get("/")):
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        (KPIS, {"colour": "red"}, 400, "unknown query parameter"),
        (KPIS, {"start": "2026-13-45"}, 422, "date"),
        (KPIS, {"start": "2026-02-01", "end": "2026-01-01"}, 422, "before start"),
        (KPIS, {"channel": "x' OR 1=1 --"}, 422, "pattern"),
        (KPIS, {"band": "Z"}, 422, "Input should be 'A'"),
        (KPIS, {"channel": "c" * 81}, 422, "at most 80"),
        (KPIS, {"start": "2015-01-01", "end": "2026-01-01"}, 422, "at most"),
        (RECOMMEND, {"period": "daily"}, 422, "'weekly' or 'monthly'"),
        (RECOMMEND, {"for": "2026-02-30"}, 422, "date"),
        (RECOMMEND, {"until": "2026-02-01"}, 400, "unknown query parameter"),
    ],
)
def test_malformed_parameters_are_clear_4xx(
    client: TestClient, path: str, params: dict[str, str], status: int, words: str
) -> None:
    r = client.get(path, params=params, headers=auth())
    assert r.status_code == status
    assert words in r.text


def test_oversized_and_repeated_parameters(client: TestClient) -> None:
    r = client.get("/api/v1/kpis?channel=a&channel=b", headers=auth())
    assert r.status_code == 400 and "more than once" in r.text
    r = client.get("/api/v1/kpis?channel=" + "a" * 3000, headers=auth())
    assert r.status_code == 414
    r = client.get(
        "/api/v1/campaigns/em-nurture-02/leads", params={"limit": 100000}, headers=auth()
    )
    assert r.status_code == 422


def test_openapi_documents_every_view(client: TestClient) -> None:
    paths = client.get("/openapi.json", headers=auth()).json()["paths"]
    for path in ("/api/v1/kpis", "/api/v1/funnel", "/api/v1/lead-quality", "/api/v1/roi",
                 "/api/v1/cohorts", "/api/v1/anomalies", "/api/v1/model-health",
                 "/api/v1/channels/{channel_name}/campaigns", "/api/v1/campaigns/{campaign}/leads",
                 "/api/v1/insights", "/api/v1/options", "/api/v1/recommendations"):  # fmt: skip
        assert path in paths, path
    advice = paths["/api/v1/recommendations"]["get"]
    assert {p["name"] for p in advice["parameters"]} == {"period", "for"}
    schema = advice["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/Recommendations")
    params = {p["name"] for p in paths["/api/v1/kpis"]["get"]["parameters"]}
    assert {"start", "end", "channel", "campaign_id", "industry", "country", "size_bucket",
            "seniority", "band"} <= params  # fmt: skip


def test_drill_down_endpoints(client: TestClient, loaded: Loaded) -> None:
    campaigns = client.get("/api/v1/channels/email/campaigns", params=RANGE, headers=auth()).json()
    assert sum(c["leads"] for c in campaigns) == loaded.expected.leads["email"]
    leads = client.get(f"/api/v1/campaigns/{campaigns[0]['key']}/leads",
                       params={**RANGE, "limit": 5}, headers=auth()).json()  # fmt: skip
    assert len(leads) == 5 and {x["campaign_id"] for x in leads} == {campaigns[0]["key"]}
    assert not any(k in leads[0] for k in ("email", "email_hash", "phone_hash", "company"))


def test_insights_endpoint_calls_the_segment_analysis(client: TestClient) -> None:
    r = client.get("/api/v1/insights", params=RANGE, headers=auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["leads"] > 0 and "segments" in body


def test_recommendations_are_the_report_module_s_on_the_same_data(
    client: TestClient, built: Built, chdb: Client, redis_url: str, run_id: str, loaded: Loaded
) -> None:
    last = Analytics(chdb, _data.DB).options().last_day
    assert last is not None
    period = Period.last_complete("weekly", last)  # the default: last complete week of data
    direct = recommendations(chdb, settings_for(redis_url, run_id, loaded), period)
    r = client.get("/api/v1/recommendations", headers=auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["period_start"] == period.next().start.isoformat()
    assert body["summary"] == direct.summary
    assert len(body["moves"]) >= 2, "the fixture should have enough spend for budget moves"
    assert [m["text"] for m in body["moves"]] == [m.text for m in direct.moves]
    for got, want in zip(body["moves"], direct.moves, strict=True):
        assert got["amount"] == want.amount
        assert got["conversions"] == want.conversions.model_dump()
        assert got["revenue"] == want.revenue.model_dump()
    assert [c["recommended"] for c in body["campaigns"]] == [
        c.recommended for c in direct.campaigns
    ]
    assert [x["segment"] for x in body["segments"]] == [x.segment for x in direct.segments]
    # An explicit period: any day of January gives the advice for February.
    month = client.get(
        "/api/v1/recommendations", params={"period": "monthly", "for": "2026-01-17"}, headers=auth()
    ).json()
    assert (month["period_start"], month["period_end"]) == ("2026-02-01", "2026-02-28")
    again = client.get("/api/v1/recommendations", headers=auth())
    assert again.json() == body
    hits = built.registry.get_sample_value(
        "leadstream_api_cache_requests_total", {"view": "recommendations", "result": "hit"}
    )
    assert hits == 1.0  # the same Redis cache as the other views


def test_recommendations_before_the_data_say_there_is_not_enough(client: TestClient) -> None:
    r = client.get("/api/v1/recommendations", params={"for": "2025-06-04"}, headers=auth())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["moves"] == [] and body["campaigns"] == [] and body["conversions"] is None
    assert body["summary"].startswith("Not enough")
    assert body["period_start"] == "2025-06-09"  # the week after the one holding 4 June


def test_recommendations_need_credentials(client: TestClient) -> None:
    r = client.get("/api/v1/recommendations", params={"period": "weekly"})
    assert r.status_code == 401
    assert "moves" not in r.text


def test_cache_hits_then_invalidates_when_data_lands(
    client: TestClient, built: Built, chdb: Client, loaded: Loaded
) -> None:
    registry = built.registry

    def count(result: str) -> float:
        return (
            registry.get_sample_value(
                "leadstream_api_cache_requests_total", {"view": "funnel", "result": result}
            )
            or 0.0
        )

    first = client.get("/api/v1/funnel", params=RANGE, headers=auth())
    second = client.get("/api/v1/funnel", params=RANGE, headers=auth())
    assert first.json() == second.json()
    assert (count("miss"), count("hit")) == (1.0, 1.0)
    # The same query with its parameters in another order is the same cache entry.
    client.get(
        "/api/v1/funnel", params={"end": RANGE["end"], "start": RANGE["start"]}, headers=auth()
    )
    assert count("hit") == 2.0
    _data.replay(chdb, loaded.expected)  # new parts land: the watermark moves
    client.get("/api/v1/funnel", params=RANGE, headers=auth())
    assert count("miss") == 2.0
    metrics = client.get("/metrics").text
    assert "leadstream_api_cache_hit_ratio 0.5" in metrics
    assert isinstance(built.cache.client, redis.Redis)


def test_watermark_is_followed_in_the_background(redis_url: str, run_id: str) -> None:
    from prometheus_client import CollectorRegistry

    from reporting.cache import CacheMetrics, QueryCache

    mark = {"now": "a"}
    computed: list[int] = []
    client = redis.Redis.from_url(redis_url)
    cache = QueryCache(client, f"wm-{run_id}", 60, lambda: mark["now"], 0.05,
                       CacheMetrics.create(CollectorRegistry()))  # fmt: skip

    def compute() -> dict[str, int]:
        computed.append(1)
        return {"n": len(computed)}

    try:
        assert cache.get("v", {}, compute) == b'{"n":1}'
        assert cache.get("v", {}, compute) == b'{"n":1}'  # same watermark: from Redis
        mark["now"] = "b"  # data landed
        deadline = time.monotonic() + 5
        while cache.current_watermark() != "b" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.get("v", {}, compute) == b'{"n":2}'
    finally:
        cache.close()
        keys = list(client.scan_iter(f"wm-{run_id}:*", count=10000))
        if keys:
            client.delete(*keys)
    assert cache._thread is None
