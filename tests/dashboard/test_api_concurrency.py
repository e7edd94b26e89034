"""Many users at once: no process-wide lock, parallel chDB handles, one query per burst."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from api.server import Built, build_app
from reporting._flight import SingleFlight
from reporting.pool import ClientPool
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_api import RANGE, auth, settings_for

pytestmark = pytest.mark.integration
USERS = 16


def at_once(n: int, call: Callable[[int], Any]) -> list[Any]:
    """``call(i)`` for i < n, all started together on their own threads."""
    start = threading.Barrier(n)

    def run(i: int) -> Any:
        start.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_single_flight_shares_one_computation_and_its_error() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.3)
        return 7

    results = at_once(USERS, lambda _: flight.do("k", slow))
    assert len(calls) == 1
    assert sorted(shared for _, shared in results) == [False] + [True] * (USERS - 1)
    assert {value for value, _ in results} == {7}

    def broken() -> int:
        time.sleep(0.2)
        raise RuntimeError("no")

    errors = at_once(4, lambda _: _raises(lambda: flight.do("e", broken)))
    assert errors == ["no"] * 4
    assert flight.do("k", lambda: 8) == (8, False)  # nothing is kept after a call


def _raises(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except RuntimeError as exc:
        return str(exc)
    return None


class _HttpLike:
    """Stands for an HTTP client without a session (it is never lent exclusively)."""

    uri = "http://clickhouse:8123"

    def get_client_setting(self, key: str) -> str | None:
        return None


def test_a_server_client_is_shared_without_a_lock() -> None:
    pool = ClientPool.for_client(_HttpLike())  # type: ignore[arg-type]  # a stand-in
    assert not pool.exclusive
    inside = threading.Barrier(USERS, timeout=5)  # all hold the client at the same time

    def hold(_: int) -> object:
        with pool.client() as client:
            inside.wait()
            return client

    assert len({id(c) for c in at_once(USERS, hold)}) == 1


@pytest.fixture
def built(redis_url: str, run_id: str, loaded: Loaded, chdb: Client) -> Iterator[Built]:
    b = build_app(settings_for(redis_url, f"conc-{run_id}", loaded, cache_ttl_s=0), chdb)
    yield b
    b.close()


def test_chdb_handles_open_when_requests_overlap_and_query_in_parallel(built: Built) -> None:
    pool = built.analytics.pool
    assert pool.exclusive and pool.opened == 1  # nothing opened before it is needed
    inside = threading.Barrier(4, timeout=10)

    def hold(_: int) -> tuple[int, int]:
        with pool.client() as client:
            inside.wait()  # four handles lent at the same time: no process-wide lock
            return id(client), int(
                client.query("SELECT count() FROM numbers(1000000)").result_rows[0][0]
            )

    held = at_once(4, hold)
    assert len({h for h, _ in held}) == 4 and {n for _, n in held} == {1_000_000}
    assert pool.opened == 4 == built.analytics.pool.size
    built.close()
    assert pool.opened == 1


def test_a_burst_of_identical_requests_runs_one_query(built: Built) -> None:
    computed = []
    kpis = built.analytics.kpis

    def counted(f: Any) -> Any:
        computed.append(f)
        time.sleep(0.3)  # the burst arrives while the first one computes
        return kpis(f)

    built.analytics.kpis = counted  # type: ignore[method-assign]  # counts the queries
    http = TestClient(built.app)
    answers = at_once(USERS, lambda _: http.get("/api/v1/kpis", params=RANGE, headers=auth()))
    assert [r.status_code for r in answers] == [200] * USERS
    assert len({r.content for r in answers}) == 1
    assert len(computed) == 1
    shared = built.registry.get_sample_value(
        "leadstream_api_cache_requests_total", {"view": "kpis", "result": "shared"}
    )
    assert shared == USERS - 1


def test_different_requests_at_once_get_the_answers_they_get_alone(built: Built) -> None:
    http = TestClient(built.app)
    urls = [("/api/v1/kpis", {**RANGE, "channel": ch}) for ch in ("email", "paid_social")] + [
        ("/api/v1/funnel", RANGE), ("/api/v1/roi", {**RANGE, "by": "industry"}),
        ("/api/v1/lead-quality", {**RANGE, "industry": "software"}), ("/api/v1/cohorts", RANGE),
    ]  # fmt: skip
    alone = [http.get(u, params=p, headers=auth()).content for u, p in urls]
    together = at_once(len(urls) * 2, lambda i: http.get(urls[i % len(urls)][0],
                       params=urls[i % len(urls)][1], headers=auth()).content)  # fmt: skip
    assert together == alone * 2
    assert built.analytics.pool.opened > 1
