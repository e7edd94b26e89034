"""``/api/v1/attribution`` on real chDB and Redis: the numbers are the models', filters apply."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.server import Built
from reporting.attribution import Attribution
from tests.attribution.conftest import Journeys

pytestmark = pytest.mark.integration
URL = "/api/v1/attribution"


@pytest.fixture(scope="module")
def api(built: Built) -> TestClient:
    return TestClient(built.app)


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
    assert api.get(URL, params={**_range(journeys), "lookback_days": 0}).status_code == 422


def test_every_declared_parameter_changes_the_answer(api: TestClient, journeys: Journeys) -> None:
    """What issue 19 asks of every view, on journeys that cross channels (the dashboard
    test data has one channel per lead, where every model credits alike)."""
    schema = api.get("/openapi.json").json()
    declared = {p["name"] for p in schema["paths"][URL]["get"]["parameters"]}
    assert declared == {"start", "end", "channel", "model", "compare", "lookback_days",
                        "half_life_days"}  # fmt: skip
    base = {**_range(journeys), "model": "time_decay"}
    mid = journeys.start + (journeys.end - journeys.start) / 2
    variants = {
        "start": mid.isoformat(), "end": mid.isoformat(), "channel": "email",
        "model": "first_touch", "compare": "last_touch", "lookback_days": "3",
        "half_life_days": "0.5",
    }  # fmt: skip
    baseline = api.get(URL, params=base)
    assert baseline.status_code == 200, baseline.text
    for name in sorted(declared):
        r = api.get(URL, params={**base, name: variants[name]})
        assert r.status_code == 200, (name, r.text)
        assert r.json() != baseline.json(), f"{name} changes nothing"
    # A filter the view does not declare is not one: the answer is the same.
    ignored = api.get(URL, params={**base, "industry": "software"})
    assert ignored.json() == baseline.json()
