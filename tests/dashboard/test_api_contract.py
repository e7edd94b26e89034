"""The API keeps its contract: each root cause the fuzzing found, with its exact request.

Days outside the documented range are a 422, never a 500; every answer, errors
included, has the security headers and, for errors, the one error format; the
schema declares its security, its error answers and its limits; timestamps
carry an offset; and every filter an operation declares changes its answer on
data where it should.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api._errors import Error
from api.server import Built, build_app
from tests.dashboard import _data
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_api import RANGE, auth, settings_for

pytestmark = pytest.mark.integration

SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


@pytest.fixture(scope="module")
def built(redis_url: str, loaded: Loaded, chdb: Client) -> Iterator[Built]:
    # The cache is off: every request below reaches ClickHouse.
    b = build_app(settings_for(redis_url, "contract", loaded, cache_ttl_s=0), chdb)
    yield b
    b.cache.close()


@pytest.fixture(scope="module")
def client(built: Built) -> TestClient:
    return TestClient(built.app, raise_server_exceptions=False)


def assert_error(r: Any, status: int) -> dict[str, Any]:
    """``r`` is an error answer of ``status`` in the API's one format, with every header."""
    assert r.status_code == status, r.text
    for name in SECURITY_HEADERS:
        assert name in r.headers, name
    body = r.json()
    Error.model_validate(body)
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize(
    "url",
    [
        # years before 1000 were bound as '999-12-02 00:00:00', which ClickHouse refuses
        "/api/v1/recommendations?for=0617-02-05",
        "/api/v1/anomalies?end=0999-12-31",
        "/api/v1/insights?end=0999-12-31",
        "/api/v1/model-health?start=0900-01-01&end=0900-01-02",
        "/api/v1/leads?channel=email&start=0999-01-01&end=0999-01-05",
        # years 1 and 9999 overflowed the date arithmetic
        "/api/v1/kpis?end=0001-01-10",
        "/api/v1/insights?start=0001-01-01&end=0001-01-02",
        "/api/v1/recommendations?for=9999-12-31",
        "/api/v1/kpis?start=9999-12-30&end=9999-12-31",
        # numbers were read as Unix times; basic ISO format and impossible days
        "/api/v1/recommendations?for=0.0",
        "/api/v1/kpis?start=0&end=1",
        "/api/v1/kpis?start=20260101",
        "/api/v1/kpis?start=2026-02-29",
        "/api/v1/funnel?end=2100-01-01",
        "/api/v1/funnel?start=1999-12-31",
    ],
)
def test_days_outside_the_range_are_422_not_500(client: TestClient, url: str) -> None:
    body = assert_error(client.get(url, headers=auth()), 422)
    assert "YYYY-MM-DD from 2000-01-01 to 2099-12-31" in body["detail"]
    assert body["errors"] and body["errors"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/kpis?end=2000-01-01",  # the previous period lies before the range
        "/api/v1/kpis?start=2000-01-01&end=2010-01-07",  # the longest range, at the start
        "/api/v1/insights?start=2099-12-01&end=2099-12-31",
        "/api/v1/recommendations?for=2000-01-01",
        "/api/v1/recommendations?for=2099-12-31&period=monthly",
        "/api/v1/anomalies?end=2099-12-31",
        "/api/v1/model-health?start=2000-01-01",
        "/api/v1/leads?channel=email&start=2099-12-31",  # start after the data: end follows
        "/api/v1/cohorts?start=2000-01-01",  # no end: the range stops at the longest one
        "/api/v1/kpis?start=2024-02-29&end=2024-03-01",
    ],
)
def test_days_at_the_edges_of_the_range_are_answered(client: TestClient, url: str) -> None:
    r = client.get(url, headers=auth())
    assert r.status_code == 200, r.text


def test_a_failure_inside_a_view_is_a_500_with_headers_and_the_error_format(
    redis_url: str, loaded: Loaded, chdb: Client
) -> None:
    b = build_app(settings_for(redis_url, "contract-500", loaded, cache_ttl_s=0), chdb)

    def broken(*_: object) -> None:
        raise RuntimeError("boom: a bug in a view")

    b.analytics.kpis = broken  # type: ignore[method-assign]  # the fault to inject
    r = TestClient(b.app, raise_server_exceptions=False).get(KPIS_URL, headers=auth())
    body = assert_error(r, 500)
    assert r.headers["cache-control"] == "no-store"
    assert "boom" not in body["detail"]  # no internals in the answer


KPIS_URL = "/api/v1/kpis?start=2026-01-01&end=2026-01-31"


@pytest.mark.parametrize(
    ("url", "status", "headers"),
    [
        ("/api/v1/kpis?colour=red", 400, True),
        ("/api/v1/kpis?channel=a&channel=b", 400, True),
        ("/api/v1/kpis?channel=" + "a" * 3000, 414, True),
        ("/api/v1/kpis", 401, False),
        ("/api/v1/kpis?band=Z", 422, True),
        ("/api/v1/kpis?start=2026-02-01&end=2026-01-01", 422, True),
        ("/api/v1/kpis?start=2010-01-01&end=2026-01-01", 422, True),
        ("/api/v1/campaigns/em-nurture-02/leads?limit=501", 422, True),
        ("/api/v1/nowhere", 404, True),
    ],
)
def test_every_error_has_one_format(
    client: TestClient, url: str, status: int, headers: bool
) -> None:
    assert_error(client.get(url, headers=auth() if headers else {}), status)


def test_the_schema_declares_security_errors_and_limits(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers=auth()).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "basic", "session"}
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert len(operations) == 17  # the 16 views and attribution
    for op in operations:
        assert op["security"], op["operationId"]
        for status in ("400", "401", "414", "422", "500"):
            ref = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/Error"), (op["operationId"], status)
    params = {p["name"]: p for p in schema["paths"]["/api/v1/kpis"]["get"]["parameters"]}
    assert params["start"]["schema"]["format"] == "date"
    assert params["start"]["schema"]["type"] == "string"
    assert "2099-12-31" in params["start"]["description"]
    assert "3660" in params["end"]["description"]
    for path in ("/api/v1/leads", "/api/v1/campaigns/{campaign}/leads"):
        limit = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"]["maximum"] == 500  # api.max_rows, which the server enforces


def test_without_authentication_no_security_is_declared(
    redis_url: str, loaded: Loaded, chdb: Client
) -> None:
    b = build_app(settings_for(redis_url, "contract-open", loaded, auth_enabled=False), chdb)
    schema = TestClient(b.app).get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    op = schema["paths"]["/api/v1/kpis"]["get"]
    assert "security" not in op and "401" not in op["responses"]


def test_timestamps_carry_their_offset(client: TestClient) -> None:
    rows = client.get("/api/v1/anomalies", params=RANGE, headers=auth()).json()
    assert rows
    for row in rows:
        for name in ("window_start", "window_end", "detected_at"):
            assert row[name].endswith("Z"), row[name]
    health = client.get("/api/v1/model-health", params=RANGE, headers=auth()).json()
    assert health["metrics"] and health["metrics"][0]["recorded_at"].endswith("Z")


def _variants(options: dict[str, Any]) -> dict[str, str]:
    """For each parameter, a value that narrows or changes the answer on the test data."""
    segments = options["segments"]
    return {
        "start": (_data.START + timedelta(days=12)).isoformat(),
        "end": (_data.START + timedelta(days=10)).isoformat(),
        "channel": "paid_social",
        "campaign_id": options["channels"]["paid_social"][0],
        "industry": segments["industry"][0],
        "country": segments["country"][0],
        "size_bucket": segments["size_bucket"][0],
        "seniority": segments["seniority"][0],
        "band": "A",
        "by": "campaign_id",
        "limit": "1",
        "hours": "1",
        "period": "monthly",
        "for": (_data.START + timedelta(days=20)).isoformat(),
    }


def test_every_declared_parameter_changes_the_answer(client: TestClient) -> None:
    schema = client.get("/openapi.json", headers=auth()).json()
    options = client.get("/api/v1/options", headers=auth()).json()
    variants = _variants(options)
    email_campaign = options["channels"]["email"][0]
    checked = 0
    for template, item in schema["paths"].items():
        if template == "/api/v1/attribution":
            continue  # needs journeys across channels: tests/attribution/test_attribution_api.py
        declared = [p["name"] for p in item["get"].get("parameters", []) if p["in"] == "query"]
        path = template.format(channel_name="email", campaign=email_campaign)
        base: dict[str, str] = {}
        if {"start", "end"} <= set(declared):
            base |= RANGE
        baseline = client.get(path, params=base, headers=auth())
        assert baseline.status_code == 200, (path, baseline.text)
        for name in declared:
            params = {**base, name: variants[name]}
            r = client.get(path, params=params, headers=auth())
            assert r.status_code == 200, (path, name, r.text)
            assert r.content != baseline.content, f"{template}: {name} changes nothing"
            checked += 1
    assert checked >= 70


def test_insights_filter_by_segment(client: TestClient) -> None:
    whole = client.get("/api/v1/insights", params=RANGE, headers=auth()).json()
    email = client.get(
        "/api/v1/insights", params={**RANGE, "channel": "email"}, headers=auth()
    ).json()
    assert 0 < email["leads"] < whole["leads"]
    # the channel is fixed, so no segment of another channel can be reported
    labels = [
        s for seg in email["segments"] for s in zip(seg["fields"], seg["values"], strict=True)
    ]
    assert all(v == "email" for f, v in labels if f == "channel")


def test_anomalies_and_model_health_declare_only_the_filters_they_apply(
    client: TestClient,
) -> None:
    schema = client.get("/openapi.json", headers=auth()).json()

    def names(path: str) -> set[str]:
        return {p["name"] for p in schema["paths"][path]["get"]["parameters"]}

    assert names("/api/v1/anomalies") == {"start", "end", "channel", "campaign_id", "limit"}
    assert names("/api/v1/model-health") == {"start", "end"}


def test_path_and_query_filters_combine(client: TestClient) -> None:
    r = client.get(
        "/api/v1/channels/email/campaigns", params={**RANGE, "channel": "paid_social"},
        headers=auth(),
    )  # fmt: skip
    assert r.status_code == 200 and r.json() == []
    same = client.get(
        "/api/v1/channels/email/campaigns", params={**RANGE, "channel": "email"}, headers=auth()
    )
    plain = client.get("/api/v1/channels/email/campaigns", params=RANGE, headers=auth()).json()
    assert plain != []
    # The same rows; money to the cent (ClickHouse sums floats in any order, so a ratio on
    # a half cent, 275.87 / 2, may round either way from one query to the next).
    assert len(same.json()) == len(plain)
    for a, b in zip(same.json(), plain, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], abs=0.0101), k
            else:
                assert a[k] == b[k], k
