"""Session fixtures for integration tests: the services that `leadstream services up` starts.

Integration tests (marked ``integration``) ask for ``broker_url``,
``redis_url``, ``prometheus_url`` or ``alertmanager_url``. They all depend on
``services``, which checks once per session that the broker, Redis,
Prometheus and Alertmanager answer on the ports in the settings. When one
does not: under CI (``CI=true``) the test fails, elsewhere it is skipped;
both say to run ``leadstream services up`` (``make test`` does it for you).

Isolation comes from names, not from cleanup: take ``run_id`` and use it in
topic names, Redis key prefixes and metric labels.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from cli._probes import http_ready, redis_ping, tcp_ready
from cli._procs import HOST
from config.settings import Settings, load_settings

# Property tests explore new inputs on every local run; under CI they replay the same
# ones (derandomized), so a submission's result does not depend on the draw. What a
# local run finds is fixed in the code or in the test's oracle, not left to CI.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


@dataclass(frozen=True)
class Services:
    """Where the session's services answer."""

    broker_url: str  # kafka://host:port, the format of KafkaSettings.bootstrap
    redis_url: str
    prometheus_url: str
    alertmanager_url: str
    run_dir: Path


@pytest.fixture(scope="session")
def services_settings(pytestconfig: pytest.Config) -> Settings:
    """The settings the services were started with, ``services.run_dir`` made absolute.

    A relative run directory is taken from the repository root, where
    `leadstream services up` runs in `make test`.
    """
    settings = load_settings()
    run_dir = settings.services.run_dir
    if not run_dir.is_absolute():
        run_dir = pytestconfig.rootpath / run_dir
    return settings.model_copy(
        update={"services": settings.services.model_copy(update={"run_dir": run_dir})}
    )


@pytest.fixture(scope="session")
def services(services_settings: Settings) -> Services:
    """Check that every service answers; fail under CI, skip elsewhere, if one does not."""
    svc = services_settings.services
    checks = {
        f"broker (TCP {HOST}:{svc.broker_port})": tcp_ready(HOST, svc.broker_port, 2.0),
        f"redis (PING {HOST}:{svc.redis_port})": redis_ping(HOST, svc.redis_port, 2.0),
        f"prometheus (GET {HOST}:{svc.prometheus_port}/-/ready)": http_ready(
            HOST, svc.prometheus_port, timeout=2.0
        ),
        f"alertmanager (GET {HOST}:{svc.alertmanager_port}/-/ready)": http_ready(
            HOST, svc.alertmanager_port, timeout=2.0
        ),
    }
    missing = [name for name, ok in checks.items() if not ok]
    if missing:
        message = (
            f"integration services not reachable: {', '.join(missing)}."
            " Start them with `leadstream services up` (or run `make test`)."
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Services(
        broker_url=f"kafka://{HOST}:{svc.broker_port}",
        redis_url=f"redis://{HOST}:{svc.redis_port}/0",
        prometheus_url=f"http://{HOST}:{svc.prometheus_port}",
        alertmanager_url=f"http://{HOST}:{svc.alertmanager_port}",
        run_dir=svc.run_dir,
    )


@pytest.fixture(scope="session")
def broker_url(services: Services) -> str:
    """The Kafka-protocol broker as ``kafka://127.0.0.1:PORT`` (Faust's format)."""
    return services.broker_url


@pytest.fixture(scope="session")
def broker_bootstrap(services: Services) -> str:
    """The broker as ``127.0.0.1:PORT``, for aiokafka's ``bootstrap_servers``."""
    return services.broker_url.removeprefix("kafka://")


@pytest.fixture(scope="session")
def redis_url(services: Services) -> str:
    """Redis as ``redis://127.0.0.1:PORT/0``; prefix your keys with ``run_id``."""
    return services.redis_url


@pytest.fixture(scope="session")
def prometheus_url(services: Services) -> str:
    """Prometheus as ``http://127.0.0.1:PORT``."""
    return services.prometheus_url


@pytest.fixture(scope="session")
def alertmanager_url(services: Services) -> str:
    """Alertmanager as ``http://127.0.0.1:PORT``."""
    return services.alertmanager_url


@pytest.fixture
def run_id() -> str:
    """A unique short id (``t`` + 10 hex digits) for this test's topics, tenant and keys."""
    return f"t{uuid.uuid4().hex[:10]}"
