"""Fixtures of the reliability tests (the helpers live in ``_live.py``)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration._worker import WorkerRun
from tests.reliability._live import live_pipeline

__all__ = ["live_pipeline", "run"]


@pytest.fixture
def run(broker_url: str, redis_url: str, run_id: str, tmp_path: Path) -> Iterator[WorkerRun]:
    """`leadstream worker` as a child process on this test's topics; killed if left running."""
    worker = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    yield worker
    if worker.process is not None and worker.process.poll() is None:
        worker.stop(signal.SIGKILL)
