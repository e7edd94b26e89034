"""Generated multi-channel journeys in a chDB folder, loaded once through the real ingest path.

chDB serves one data directory per process at a time: the folder is loaded and
closed once; each module that needs it opens a client and closes it at its end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from api.server import Built, build_app
from config.settings import Settings
from sinks.clickhouse import connect
from streaming.synthetic import GeneratorConfig
from tests.insights._data import chdb_settings, load_generated

JOURNEYS = GeneratorConfig(seed=8, leads=3000, days=35, journeys=True)
#: The period the API and dashboard tests look at: the last four weeks of the data.
END = JOURNEYS.start + timedelta(days=JOURNEYS.days - 1)
START = END - timedelta(days=27)


@dataclass(frozen=True)
class Journeys:
    settings: Settings
    start: date
    end: date


@pytest.fixture(scope="session")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> Journeys:
    settings = chdb_settings(tmp_path_factory.mktemp("attribution-journeys") / "chdb")
    load_generated(settings, JOURNEYS)
    return Journeys(settings, START, END)


@pytest.fixture(scope="module")
def built(redis_url: str, journeys: Journeys, journeys_chdb: Client) -> Iterator[Built]:
    """The app over the journeys, without authentication, its cache keys removed at the end."""
    prefix = f"attr-{uuid.uuid4().hex[:10]}"
    s = journeys.settings
    settings = s.model_copy(
        update={
            "redis": s.redis.model_copy(update={"url": redis_url, "key_prefix": prefix}),
            "api": s.api.model_copy(update={"auth_enabled": False, "watermark_every_s": 0}),
        }
    )
    app = build_app(settings, journeys_chdb)
    yield app
    assert app.cache.client is not None
    keys = list(app.cache.client.scan_iter(f"{prefix}:*", count=10000))
    if keys:
        app.cache.client.delete(*keys)


@pytest.fixture(scope="module")
def journeys_chdb(journeys: Journeys) -> Iterator[Client]:
    client = connect(journeys.settings.clickhouse)
    yield client
    client.close()
