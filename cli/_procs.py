"""Start, check and stop the local services behind `leadstream services`.

Four servers, each bound to 127.0.0.1 only, each a child process that
outlives the command that started it (its own session, output appended to a
log file), each in its own folder under one run directory::

    <run_dir>/broker/        broker.log                             (Tansu, memory storage)
    <run_dir>/redis/         redis.log                              (no persistence)
    <run_dir>/prometheus/    prometheus.log  prometheus.yml  targets/  data/
    <run_dir>/alertmanager/  alertmanager.log  alertmanager.yml  data/

plus ``<name>.pid`` and ``<name>.port`` in each folder while it runs.

The same functions serve the CLI, the demo (which keeps the broker as its own
child: ``with start_broker(port, run_dir, detach=False) as broker: ...``) and
the tests. Every ``start_*`` is idempotent: if our process already runs in
that folder, it returns a handle to it with ``started=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cli._probes import port_in_use
from cli._service_config import (
    DEFAULT_WEBHOOK_PORT,
    add_scrape_target,
    remove_scrape_target,
    render_alertmanager_config,
    render_prometheus_config,
)
from cli._spawn import (
    HOST,
    KINDS,
    ServiceHandle,
    check_name,
    check_port,
    pid_file,
    port_env_var,
    port_file,
    resolve_binary,
    running_pid,
    spawn,
    stop_process,
)
from cli.exceptions import ServiceError
from config.settings import Settings

__all__ = [
    "DEFAULT_WEBHOOK_PORT",
    "HOST",
    "SERVICE_NAMES",
    "ServiceHandle",
    "ServiceStatus",
    "add_scrape_target",
    "ensure_services",
    "port_env_var",
    "remove_scrape_target",
    "resolve_binary",
    "scrape_targets_dir",
    "select_services",
    "service_statuses",
    "start_alertmanager",
    "start_broker",
    "start_prometheus",
    "start_redis",
    "stop_process",
    "stop_services",
]

#: Display order. Services start broker → redis → alertmanager → prometheus, stop in reverse.
SERVICE_NAMES: tuple[str, ...] = ("broker", "redis", "prometheus", "alertmanager")
_START_ORDER: tuple[str, ...] = ("broker", "redis", "alertmanager", "prometheus")

State = Literal["running", "unhealthy", "stopped", "foreign"]


@dataclass(frozen=True)
class ServiceStatus:
    """What `leadstream services status` reports for one service."""

    name: str
    pid: int | None
    address: str
    state: State
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the service is ours, alive and answering."""
        return self.state == "running"


def start_broker(
    port: int, run_dir: Path, *, timeout: float = 30.0, detach: bool = True
) -> ServiceHandle:
    """Start the Tansu broker (memory storage) on 127.0.0.1:``port``, or return the running one.

    ``detach=False`` keeps it in the caller's session, so a Ctrl-C in the
    terminal reaches it too; the caller should still stop it (``with``).
    """
    url = f"tcp://{HOST}:{port}"

    def argv(binary: Path, directory: Path) -> list[str]:
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]  # fmt: skip

    return spawn("broker", port, run_dir, argv, timeout=timeout, detach=detach)


def start_redis(
    port: int, run_dir: Path, *, timeout: float = 30.0, detach: bool = True
) -> ServiceHandle:
    """Start redis-server without persistence on 127.0.0.1:``port``, or return the running one."""

    def argv(binary: Path, directory: Path) -> list[str]:
        return [str(binary), "--bind", HOST, "--port", str(port), "--dir", str(directory),
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", str(directory / "redis.log")]  # fmt: skip

    return spawn("redis", port, run_dir, argv, timeout=timeout, detach=detach)


def start_alertmanager(
    port: int,
    run_dir: Path,
    *,
    webhook_port: int = DEFAULT_WEBHOOK_PORT,
    timeout: float = 30.0,
    detach: bool = True,
) -> ServiceHandle:
    """Start Alertmanager on 127.0.0.1:``port``, sending every alert to a loopback webhook.

    The config is rendered from `config/alertmanager/alertmanager.yml`; the
    empty ``--cluster.listen-address`` turns off the gossip port (0.0.0.0:9094).
    """

    def argv(binary: Path, directory: Path) -> list[str]:
        config = render_alertmanager_config(directory, webhook_port=webhook_port)
        return [str(binary), f"--config.file={config}", f"--storage.path={directory / 'data'}",
                f"--web.listen-address={HOST}:{port}", "--cluster.listen-address="]  # fmt: skip

    return spawn("alertmanager", port, run_dir, argv, timeout=timeout, detach=detach)


def start_prometheus(
    port: int,
    run_dir: Path,
    *,
    alertmanager_port: int,
    worker_host: str = HOST,
    worker_port: int = 9464,
    timeout: float = 30.0,
    detach: bool = True,
) -> ServiceHandle:
    """Start Prometheus on 127.0.0.1:``port`` with the config rendered from `config/prometheus/`.

    It scrapes the worker at ``worker_host:worker_port`` and the file_sd
    targets in :func:`scrape_targets_dir`, loads `config/prometheus/rules/`,
    and alerts to the Alertmanager on ``alertmanager_port``.
    """

    def argv(binary: Path, directory: Path) -> list[str]:
        config = render_prometheus_config(
            directory,
            alertmanager_port=alertmanager_port,
            worker_host=worker_host,
            worker_port=worker_port,
        )
        return [str(binary), f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}", "--storage.tsdb.retention.time=1d",
                f"--web.listen-address={HOST}:{port}", "--web.enable-lifecycle"]  # fmt: skip

    return spawn("prometheus", port, run_dir, argv, timeout=timeout, detach=detach)


def ensure_services(
    settings: Settings,
    *,
    only: Iterable[str] | None = None,
    timeout: float = 30.0,
    webhook_port: int = DEFAULT_WEBHOOK_PORT,
) -> dict[str, ServiceHandle]:
    """Start whichever of the services is not running yet; leave running ones alone.

    Binaries and ports are checked for all of them before anything starts; if
    one then fails to start, the ones this call started are stopped again.
    Returns a handle per service, in display order.
    """
    names = select_services(only)
    svc = settings.services
    run_dir = svc.run_dir.resolve()
    for name in names:
        if running_pid(name, run_dir / name) is None:
            resolve_binary(name)
            check_port(name, _port(settings, name))
    starters: dict[str, Callable[[], ServiceHandle]] = {
        "broker": lambda: start_broker(svc.broker_port, run_dir, timeout=timeout),
        "redis": lambda: start_redis(svc.redis_port, run_dir, timeout=timeout),
        "alertmanager": lambda: start_alertmanager(
            svc.alertmanager_port, run_dir, webhook_port=webhook_port, timeout=timeout
        ),
        "prometheus": lambda: start_prometheus(
            svc.prometheus_port,
            run_dir,
            alertmanager_port=svc.alertmanager_port,
            worker_host=settings.metrics.host,
            worker_port=settings.metrics.port,
            timeout=timeout,
        ),
    }
    handles: dict[str, ServiceHandle] = {}
    try:
        for name in _START_ORDER:
            if name in names:
                handles[name] = starters[name]()
    except ServiceError:
        for handle in reversed(list(handles.values())):
            if handle.started:
                handle.stop()
        raise
    return {name: handles[name] for name in names}


def stop_services(
    settings: Settings, *, only: Iterable[str] | None = None, timeout: float = 10.0
) -> dict[str, int | None]:
    """Stop our services by pid file, in reverse start order; map each to the pid stopped or None.

    A pid file whose process is gone or is not ours is removed; nothing else is killed.
    """
    names = select_services(only)
    run_dir = settings.services.run_dir.resolve()
    result: dict[str, int | None] = {}
    for name in reversed(_START_ORDER):
        if name not in names:
            continue
        directory = run_dir / name
        pid = running_pid(name, directory)
        if pid is not None:
            stop_process(pid, timeout=timeout)
        pid_file(directory, name).unlink(missing_ok=True)
        port_file(directory, name).unlink(missing_ok=True)
        result[name] = pid
    return {name: result[name] for name in names}


def service_statuses(
    settings: Settings, *, only: Iterable[str] | None = None
) -> list[ServiceStatus]:
    """The state of each service: running, unhealthy (ours but not answering), stopped, foreign."""
    run_dir = settings.services.run_dir.resolve()
    out: list[ServiceStatus] = []
    for name in select_services(only):
        port = _port(settings, name)
        address = f"{HOST}:{port}"
        pid = running_pid(name, run_dir / name)
        if pid is not None:
            if KINDS[name].probe(HOST, port):
                out.append(ServiceStatus(name, pid, address, "running"))
            else:
                log = run_dir / name / f"{name}.log"
                detail = f"alive but not answering on {address}; see {log}"
                out.append(ServiceStatus(name, pid, address, "unhealthy", detail))
        elif port_in_use(HOST, port):
            detail = f"port held by a process we did not start; change {port_env_var(name)}"
            out.append(ServiceStatus(name, None, address, "foreign", detail))
        else:
            out.append(ServiceStatus(name, None, address, "stopped"))
    return out


def select_services(only: Iterable[str] | None) -> list[str]:
    """Validate service names (None or empty: all of them), in display order.

    >>> select_services(["redis", "broker"])
    ['broker', 'redis']
    >>> select_services(None)
    ['broker', 'redis', 'prometheus', 'alertmanager']
    """
    wanted = {check_name(n.strip()) for n in only or () if n.strip()}
    return [n for n in SERVICE_NAMES if not wanted or n in wanted]


def scrape_targets_dir(run_dir: Path) -> Path:
    """The file_sd folder that Prometheus watches; pass it to :func:`add_scrape_target`."""
    return run_dir.resolve() / "prometheus" / "targets"


def _port(settings: Settings, name: str) -> int:
    port: int = getattr(settings.services, f"{name}_port")
    return port
