"""Schemathesis fuzzes the API from its own ``/openapi.json``, in-process over ASGI.

Every check Schemathesis has runs on every operation, with a fixed seed and a
bounded number of examples, over the loaded test data, with the cache on and
off: once with credentials
(answers must match the schema, valid data must be accepted, invalid data
refused, no 5xx) and once without (every operation must refuse with a
documented 401).

Two rules cannot be written in OpenAPI and are stated in the descriptions
instead: ``start <= end`` and a range of at most 3,660 days. The generator is
taught them here (they hold for the cases it fuzzes; its coverage phase varies
one parameter at a time, which cannot break them), and test_api_contract.py
checks the 422 that breaking them gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import schemathesis
from clickhouse_connect.driver.client import Client
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES as REFUSALS
from schemathesis.engine import Status, events, from_schema

from api.server import Built, build_app
from reporting.queries import MAX_DAYS
from tests.dashboard.conftest import Loaded
from tests.dashboard.test_dashboard_api import TOKEN, settings_for

pytestmark = pytest.mark.integration

#: Examples per operation and phase, and the seed: the same cases on every run.
EXAMPLES = 20
SEED = 19
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(params=[300, 0], ids=["cache-on", "cache-off"])
def built(
    request: pytest.FixtureRequest, redis_url: str, run_id: str, loaded: Loaded, chdb: Client
) -> Iterator[Built]:
    """The app with its cache on (a fresh key prefix) and off."""
    b = build_app(settings_for(redis_url, run_id, loaded, cache_ttl_s=request.param), chdb)
    yield b
    b.close()


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def filter_query(ctx: Any, query: dict[str, Any] | None) -> bool:
    """Only the cases the documented cross-parameter rules allow (see the module doc)."""
    query = query or {}
    start, end = _day(query.get("start")), _day(query.get("end"))
    if start and end and (end < start or (end - start).days >= MAX_DAYS):
        return False
    return True


def fuzz(b: Built, headers: dict[str, str]) -> list[str]:
    """Run every phase and check of Schemathesis on the app; the failures, described."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "headers": headers,
        "generation": {"max-examples": EXAMPLES},
        # A URL over 2,048 bytes is refused with the documented 414.
        "checks": {"negative_data_rejection": {"expected-statuses": [*REFUSALS, "414"]}},
    })  # fmt: skip
    checks = config.projects.default.checks
    load_all_checks()
    disabled = [
        c.__name__ for c in CHECKS.get_all() if not checks.get_by_name(name=c.__name__).enabled
    ]
    assert not disabled, f"every check runs: {disabled} are off"
    # The document itself needs credentials; the cases carry only ``headers``.
    schema = schemathesis.openapi.from_asgi("/openapi.json", b.app, config=config, headers=BEARER)
    schema.hooks.register_hook_with_name(filter_query, "filter_query")
    failures: list[str] = []
    scenarios = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            if event.status in (Status.FAILURE, Status.ERROR):
                for case_id, checks in event.recorder.checks.items():
                    case = event.recorder.cases[case_id].value
                    for check in checks:
                        if check.failure_info is not None:
                            failures.append(
                                f"{event.label} [{event.phase}] {check.name}: "
                                f"{case.as_curl_command()} -> {check.failure_info.failure.title}"
                            )
                if event.status == Status.ERROR:
                    failures.append(f"{event.label} [{event.phase}]: an error")
        elif isinstance(event, (events.FatalError, events.NonFatalError)):
            failures.append(f"{type(event).__name__}: {getattr(event, 'info', event)}")
    assert scenarios >= 16
    return sorted(set(failures))


def test_fuzz_with_credentials(built: Built) -> None:
    failures = fuzz(built, BEARER)
    assert not failures, "\n".join(failures)


@pytest.fixture
def built_once(redis_url: str, run_id: str, loaded: Loaded, chdb: Client) -> Iterator[Built]:
    """The app as served (cache on): without credentials nothing reaches the cache."""
    b = build_app(settings_for(redis_url, run_id, loaded), chdb)
    yield b
    b.close()


def test_fuzz_without_credentials(built_once: Built) -> None:
    failures = fuzz(built_once, {})
    assert not failures, "\n".join(failures)
