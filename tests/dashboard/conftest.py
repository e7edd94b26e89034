"""Shared data for the dashboard tests: one chDB folder loaded once per session.

chDB serves one data directory per process at a time, so the folder is loaded
and closed once; each module then opens it and closes it again at its end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client

from reporting.queries import Analytics
from sinks.clickhouse import migrate
from tests.dashboard import _data


@dataclass(frozen=True)
class Loaded:
    """Where the data is and what it should show."""

    path: Path
    expected: _data.Expected


@pytest.fixture(scope="session")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """Generated events in a chDB folder, rollups built (the client is closed again)."""
    path = tmp_path_factory.mktemp("dashboard") / "chdb"
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    try:
        migrate(client, _data.DB)
        expected = _data.load(client)
        Analytics(client, _data.DB).refresh()
    finally:
        client.close()
    return Loaded(path, expected)


@pytest.fixture(scope="module")
def chdb(loaded: Loaded) -> Iterator[Client]:
    """A client on the loaded folder for one module, closed at its end."""
    client = clickhouse_connect.get_client(interface="chdb", path=str(loaded.path))
    yield client
    client.close()


@pytest.fixture(scope="module")
def private_chdb(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client on a private copy of the loaded folder, for a module that adds data."""
    path = tmp_path_factory.mktemp("dashboard-copy") / "chdb"
    shutil.copytree(loaded.path, path, symlinks=True)  # chDB links tables relatively
    client = clickhouse_connect.get_client(interface="chdb", path=str(path))
    yield client
    client.close()
