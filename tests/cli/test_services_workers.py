"""`leadstream services up --workers N`: N stream workers and the store's owner, on the
session's services, sharing the load; the other commands run beside them; `down --only
workers` stops the workers and leaves the services running."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli._probes import is_alive, tcp_ready
from streaming import synthetic
from tests.conftest import Services
from tests.integration._worker import HANDLED, WorkerRun

pytestmark = pytest.mark.integration


def _free_run_of_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports."""
    for base in range(24000, 60000, 97):
        taken = False
        for port in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken = True
                    break
        if not taken:
            return base
    raise RuntimeError("no run of free ports")


@pytest.fixture
def env(services: Services, run_id: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    run = WorkerRun(run_id=run_id, broker_url=services.broker_url, redis_url=services.redis_url,
                    tmp=tmp_path)  # fmt: skip
    env = run.env() | {"LEADSTREAM_SERVICES__RUN_DIR": str(services.run_dir),
                       "LEADSTREAM_METRICS__PORT": str(_free_run_of_ports(3))}  # fmt: skip
    yield env
    _leadstream(env, tmp_path, "services", "down", "--only", "workers")


def _leadstream(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


def test_services_up_with_workers_shares_the_load_and_stops_them(
    env: dict[str, str], services: Services, run_id: str, tmp_path: Path
) -> None:
    up = _leadstream(env, tmp_path, "services", "up", "--workers", "2")
    assert up.returncode == 0, up.stderr
    for name in ("worker-0 (learner,sink)", "worker-1 (stream)", "worker-2 (stream)"):
        assert name in up.stdout, up.stdout
    base = int(env["LEADSTREAM_METRICS__PORT"])
    run = WorkerRun(run_id=run_id, broker_url=services.broker_url, redis_url=services.redis_url,
                    tmp=tmp_path)  # fmt: skip
    events = list(synthetic.generate(synthetic.GeneratorConfig(seed=77, leads=400, days=20)))
    run.send(events)

    def handled(port: int) -> float:
        run.metrics_port = port
        return sum(run.metric(n) for n in HANDLED)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and handled(base + 1) + handled(base + 2) < len(events):
        time.sleep(0.5)
    per_worker = [handled(base + 1), handled(base + 2)]
    assert sum(per_worker) == len(events) and all(per_worker), per_worker
    # The owner learns and inserts; a report runs beside it, through its store relay.
    report = _leadstream(env, tmp_path, "report", "--format", "csv")
    assert report.returncode == 0, report.stderr
    assert list((tmp_path / "var" / "reports").rglob("*-kpis.csv"))
    status = _leadstream(env, tmp_path, "services", "status")
    assert status.returncode == 0, status.stdout
    assert all(f"worker-{i}" in status.stdout for i in range(3))

    pids = [int((services.run_dir / "workers" / f"worker-{i}.pid").read_text()) for i in range(3)]
    down = _leadstream(env, tmp_path, "services", "down", "--only", "workers")
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(p) for p in pids)
    assert not list((services.run_dir / "workers").glob("*.pid"))
    host, _, port = services.broker_url.removeprefix("kafka://").partition(":")
    assert tcp_ready(host, int(port)), "`down --only workers` stopped the broker"
