"""``/api/v1/attribution`` on real chDB and Redis: the numbers are the models', filters apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.server import build_app
from reporting.attribution import Attribution
from tests.attribution.conftest import Journeys

pytestmark = pytest.mark.integration
URL = "/api/v1/attribution"


@pytest.fixture(scope="module")
def api(redis_url: str, journeys: Journeys, journeys_chdb: Client) -> Iterator[TestClient]:
    prefix = f"attr-api-{journeys.settings.clickhouse.chdb_path.parent.name}"
    settings = journeys.settings.model_copy(
        update={
            "redis": journeys.settings.redis.model_copy(update={"url": redis_url,
                                                                "key_prefix": prefix}),
            "api": journeys.settings.api.model_copy(update={"auth_enabled": False,
                                                            "watermark_every_s": 0}),
        }
    )  # fmt: skip
    built = build_app(settings, journeys_chdb)
    yield TestClient(built.app)
    assert built.cache.client is not None
    keys = list(built.cache.client.scan_iter(f"{prefix}:*", count=10000))
    if keys:
        built.cache.client.delete(*keys)


def _range(j: Journeys) -> dict[str, str]:
    return {"start": j.start.isoformat(), "end": j.end.isoformat()}


def test_model_and_comparison_match_the_models(
    api: TestClient, journeys: Journeys, journeys_chdb: Client
) -> None:
    r = api.get(URL, params={**_range(journeys), "model": "linear", "compare": "data_driven"})
    assert r.status_code == 200, r.text
    body = r.json()
    table = Attribution(journeys_chdb, journeys.settings.clickhouse.database).table(
        journeys.start, journeys.end
    )
    for side, model in (("model", "linear"), ("compare", "data_driven")):
        expected = table.view(model).model_dump(mode="json")  # type: ignore[arg-type]
        assert body[side] == expected
    assert body["model"]["totals"]["sql"] > 20
    assert body["compare"]["intervals"]["sql"]
    moves = [abs(m["change"]) for m in body["moves"]]
    assert moves == sorted(moves, reverse=True) and moves[0] > 0.02
    # served from the cache the second time: the same bytes
    again = api.get(URL, params={**_range(journeys), "model": "linear", "compare": "data_driven"})
    assert again.content == r.content


def test_channel_drills_into_its_campaigns(api: TestClient, journeys: Journeys) -> None:
    r = api.get(URL, params={**_range(journeys), "model": "time_decay", "channel": "email"})
    assert r.status_code == 200, r.text
    body = r.json()
    camps = body["model"]["campaigns"]
    assert camps and {c["channel"] for c in camps} == {"email"}
    email = next(c for c in body["model"]["channels"] if c["key"] == "email")
    assert sum(c["sql"] for c in camps) == pytest.approx(email["sql"], abs=0.01)
    assert body["compare"] is None and body["moves"] == []


def test_bad_requests(api: TestClient, journeys: Journeys) -> None:
    assert api.get(URL, params={**_range(journeys), "model": "gut_feeling"}).status_code == 422
    r = api.get(URL, params={**_range(journeys), "industry": "software"})
    assert r.status_code == 422 and "industry" in r.text
    assert api.get(URL, params={**_range(journeys), "lookback_days": 0}).status_code == 422
