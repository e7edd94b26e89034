"""`leadstream services` and `cli._procs` against the real binaries, on free ports in a tmp dir.

These tests start their own broker, Redis, Prometheus and Alertmanager, so
they never touch the session's services (`leadstream services up`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server
from typer.testing import CliRunner

from cli._probes import is_alive, redis_ping, tcp_ready
from cli._procs import (
    SERVICE_NAMES,
    add_scrape_target,
    ensure_services,
    scrape_targets_dir,
    service_statuses,
    start_broker,
    stop_process,
    stop_services,
)
from cli._service_config import templates_dir
from cli.exceptions import PortInUseError, ServiceError
from cli.main import app
from config.settings import MetricsSettings, ServiceSettings, Settings, load_settings

integration = pytest.mark.integration


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all sockets are held until every port is chosen)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings with every service on a free port and the run dir in tmp; stops all at the end."""
    broker, redis, prom, am, metrics = free_ports(5)
    services = ServiceSettings(
        run_dir=tmp_path / "run",
        broker_port=broker,
        redis_port=redis,
        prometheus_port=prom,
        alertmanager_port=am,
    )
    s = load_settings(services=services, metrics=MetricsSettings(port=metrics))
    yield s
    stop_services(s, timeout=5)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a `leadstream` child process that uses ``settings``' services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    svc = settings.services
    env.update(
        LEADSTREAM_SERVICES__RUN_DIR=str(svc.run_dir),
        LEADSTREAM_SERVICES__BROKER_PORT=str(svc.broker_port),
        LEADSTREAM_SERVICES__REDIS_PORT=str(svc.redis_port),
        LEADSTREAM_SERVICES__PROMETHEUS_PORT=str(svc.prometheus_port),
        LEADSTREAM_SERVICES__ALERTMANAGER_PORT=str(svc.alertmanager_port),
        LEADSTREAM_METRICS__PORT=str(settings.metrics.port),
        COLUMNS="200",
    )
    env.update(extra)
    return env


def leadstream(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cli.main ARGS`` as a separate process, like the console script does."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env or cli_env(settings),
        cwd=settings.services.run_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pids(settings: Settings) -> dict[str, int]:
    """The pid recorded for each service that has a pid file."""
    run_dir = settings.services.run_dir
    return {
        name: int((run_dir / name / f"{name}.pid").read_text())
        for name in SERVICE_NAMES
        if (run_dir / name / f"{name}.pid").exists()
    }


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.load(response)


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


@pytest.mark.parametrize(
    "argv",
    [[], ["services"], ["services", "up"], ["services", "down"], ["services", "status"]],
    ids=["root", "services", "up", "down", "status"],
)
def test_help_for_every_command(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "Show this message and exit" in result.output


def test_unknown_service_name_is_rejected(settings: Settings) -> None:
    result = leadstream(settings, "services", "status", "--only", "broker,kafka")
    assert result.returncode == 1
    assert "unknown service 'kafka'" in result.stderr


def test_missing_binary_names_the_install_command(settings: Settings, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = leadstream(
        settings, "services", "up", "--only", "redis", env=cli_env(settings, PATH=str(empty))
    )
    assert result.returncode == 1
    assert "apt-get install -y --no-install-recommends redis-server" in result.stderr
    assert not pids(settings)


def test_stop_process_kills_a_process_that_ignores_sigterm() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()  # handler installed
    assert stop_process(proc.pid, timeout=0.5, process=proc) is True
    assert proc.returncode == -signal.SIGKILL
    assert stop_process(proc.pid, process=proc) is False


@integration
def test_up_status_down_through_the_cli(settings: Settings) -> None:
    up = leadstream(settings, "services", "up")
    assert up.returncode == 0, up.stderr
    started = pids(settings)
    assert set(started) == set(SERVICE_NAMES)
    # The processes outlive `up`, and each answers on its own port.
    svc = settings.services
    assert all(is_alive(pid) for pid in started.values())
    assert tcp_ready("127.0.0.1", svc.broker_port)
    assert redis_ping("127.0.0.1", svc.redis_port)
    assert get_json(f"http://127.0.0.1:{svc.prometheus_port}/api/v1/status/buildinfo")
    assert all(s.ok for s in service_statuses(settings))

    status = leadstream(settings, "services", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("running") == len(SERVICE_NAMES)

    again = leadstream(settings, "services", "up")  # idempotent: nothing restarted
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already running") == len(SERVICE_NAMES)
    assert pids(settings) == started

    down = leadstream(settings, "services", "down")
    assert down.returncode == 0, down.stderr
    assert not any(is_alive(pid) for pid in started.values())  # gone or a zombie
    assert not pids(settings)
    after = leadstream(settings, "services", "status")
    assert after.returncode == 1
    assert after.stdout.count("stopped") == len(SERVICE_NAMES)


@integration
def test_port_taken_by_another_program_is_a_clear_error(settings: Settings) -> None:
    port = settings.services.redis_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = leadstream(settings, "services", "up")
        assert result.returncode == 1
        assert f"port {port}" in result.stderr
        assert "LEADSTREAM_SERVICES__REDIS_PORT" in result.stderr
        assert not pids(settings)  # checked before anything started

        with pytest.raises(PortInUseError, match=f"port {port}"):
            ensure_services(settings, only=["redis"])
        states = {s.name: s.state for s in service_statuses(settings)}
        assert states["redis"] == "foreign"
        assert states["broker"] == "stopped"


@integration
def test_only_starts_and_stops_the_named_services(settings: Settings) -> None:
    handles = ensure_services(settings, only=["broker", "redis"])
    assert list(handles) == ["broker", "redis"]
    assert set(pids(settings)) == {"broker", "redis"}
    stopped = stop_services(settings, only=["redis"])
    assert stopped["redis"] == handles["redis"].pid
    assert not is_alive(handles["redis"].pid)
    assert handles["broker"].is_running()


@integration
def test_start_broker_as_a_child_of_this_process(tmp_path: Path) -> None:
    port, other = free_ports(2)
    with start_broker(port, tmp_path, detach=False) as broker:
        assert broker.started and broker.process is not None
        assert broker.url == f"kafka://127.0.0.1:{port}"
        assert tcp_ready("127.0.0.1", port)
        same = start_broker(port, tmp_path)
        assert not same.started and same.pid == broker.pid
        with pytest.raises(ServiceError, match=f"on port {port}, not {other}"):
            start_broker(other, tmp_path, timeout=1)
    assert broker.process.returncode is not None  # stopped and reaped
    assert not broker.pid_file.exists()
    assert not tcp_ready("127.0.0.1", port)


@integration
def test_rendered_configs_pass_promtool_and_amtool(settings: Settings) -> None:
    handles = ensure_services(settings, only=["prometheus", "alertmanager"])
    prom_cfg = handles["prometheus"].directory / "prometheus.yml"
    am_cfg = handles["alertmanager"].directory / "alertmanager.yml"
    rules = sorted(str(p) for p in (templates_dir() / "prometheus" / "rules").glob("*.yml"))
    assert rules
    for argv in (
        ["promtool", "check", "config", str(prom_cfg)],
        ["promtool", "check", "rules", *rules],
        ["amtool", "check-config", str(am_cfg)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@integration
def test_prometheus_scrapes_file_sd_targets_and_loads_the_rules(
    settings: Settings, run_id: str
) -> None:
    handles = ensure_services(settings, only=["prometheus", "alertmanager"])
    prometheus = handles["prometheus"].url
    registry = CollectorRegistry()
    Counter("leadstream_test_total", "a test counter", registry=registry).inc(7)
    (metrics_port,) = free_ports(1)
    server, thread = start_http_server(metrics_port, addr="127.0.0.1", registry=registry)
    try:
        targets = scrape_targets_dir(settings.services.run_dir)
        add_scrape_target(targets, run_id, metrics_port, labels={"run": run_id})

        def scraped() -> bool:
            url = f"{prometheus}/api/v1/query?query=leadstream_test_total"
            result = get_json(url)["data"]["result"]
            return any(r["metric"].get("run") == run_id and r["value"][1] == "7" for r in result)

        assert eventually(scraped), "the file_sd target was not scraped within 30 s"
    finally:
        server.shutdown()
        thread.join()

    rules = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    assert "LeadstreamWorkerDown" in {r["name"] for g in rules for r in g["rules"]}
    am_port = settings.services.alertmanager_port

    def alertmanager_known() -> bool:
        active = get_json(f"{prometheus}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
        return any(f"127.0.0.1:{am_port}" in a["url"] for a in active)

    assert eventually(alertmanager_known)
