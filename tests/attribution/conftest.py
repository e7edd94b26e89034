"""Generated multi-channel journeys in a chDB folder, loaded once through the real ingest path.

chDB serves one data directory per process at a time: the folder is loaded and
closed once; each module that needs it opens a client and closes it at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from clickhouse_connect.driver.client import Client

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
def journeys_chdb(journeys: Journeys) -> Iterator[Client]:
    client = connect(journeys.settings.clickhouse)
    yield client
    client.close()
