"""Local worker processes for `leadstream services up --workers N`: scale-out on one machine.

``N`` stream workers (``worker --role stream``) and one process that owns the store and
learns (``worker --role learner,sink``: with chDB only one process may open the store,
and it answers the other commands' queries through its relay). Each worker serves its
own /metrics port (the configured port plus its number; the store's owner takes the
configured port itself) and is registered with the local Prometheus through file_sd.
Files live in ``<run_dir>/workers/``: ``<name>.pid``, ``<name>.port``, ``<name>.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cli._probes import http_ready, is_alive
from cli._procs import add_scrape_target, remove_scrape_target, scrape_targets_dir
from cli._spawn import HOST, pid_file, port_file, read_pid, stop_process
from cli.exceptions import ServiceError, ServiceStartError
from config.settings import Settings

#: The store's owner and learner; stream workers are ``worker-1`` … ``worker-N``.
OWNER = "worker-0"


@dataclass(frozen=True)
class WorkerProcess:
    """One local worker: its name, roles, pid and /metrics port."""

    name: str
    roles: str
    pid: int
    port: int
    started: bool

    @property
    def url(self) -> str:
        """Its /metrics address."""
        return f"http://{HOST}:{self.port}/metrics"


def workers_dir(settings: Settings) -> Path:
    """``<run_dir>/workers``."""
    return settings.services.run_dir.resolve() / "workers"


def layout(settings: Settings, count: int) -> list[tuple[str, str, int]]:
    """``(name, roles, metrics port)`` of the owner and ``count`` stream workers.

    >>> from config.settings import load_settings
    >>> layout(load_settings(metrics={"port": 9464}), 2)
    [('worker-0', 'learner,sink', 9464), ('worker-1', 'stream', 9465), ('worker-2', 'stream', 9466)]
    """
    if count < 1:
        raise ValueError(f"--workers must be at least 1, got {count}")
    base = settings.metrics.port
    return [(OWNER, "learner,sink", base)] + [
        (f"worker-{i}", "stream", base + i) for i in range(1, count + 1)
    ]


def running_worker(directory: Path, name: str) -> int | None:
    """The pid of our worker ``name`` if it runs (a leadstream worker, not a reused pid)."""
    pid = read_pid(pid_file(directory, name))
    if pid is None or not is_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid  # no /proc: trust the pid file
    return pid if b"worker" in cmdline and b"--role" in cmdline else None


def start_workers(
    settings: Settings, count: int, *, config: Path | None = None, timeout: float = 60.0
) -> list[WorkerProcess]:
    """Start the workers of :func:`layout` that are not running; wait until each serves /metrics.

    The children read the same settings (the environment, ``.env`` and ``config``), each
    with its own metrics port. A worker that exits while starting stops the whole start
    with the end of its log.
    """
    directory = workers_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    out: list[WorkerProcess] = []
    for name, roles, port in layout(settings, count):
        pid = running_worker(directory, name)
        if pid is not None:
            out.append(WorkerProcess(name, roles, pid, read_pid(port_file(directory, name)) or port,
                                     started=False))  # fmt: skip
            continue
        argv = [sys.executable, "-m", "cli.main"]
        if config is not None:
            argv += ["--config", str(config)]
        argv += ["worker", "--role", roles]
        env = {**os.environ, "LEADSTREAM_METRICS__PORT": str(port),
               "LEADSTREAM_METRICS__HOST": HOST}  # fmt: skip
        log = directory / f"{name}.log"
        with log.open("ab") as sink:
            sink.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(argv)}\n".encode())
            sink.flush()
            process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
                argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )  # fmt: skip
        pid_file(directory, name).write_text(f"{process.pid}\n")
        port_file(directory, name).write_text(f"{port}\n")
        if name != OWNER:  # Prometheus's static target is the configured port already
            add_scrape_target(scrape_targets_dir(settings.services.run_dir), name, port, labels={"worker": name})
        out.append(WorkerProcess(name, roles, process.pid, port, started=True))
    for w in out:
        _wait_metrics(w, directory, timeout)
    return out


def _wait_metrics(w: WorkerProcess, directory: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not http_ready(HOST, w.port, "/metrics"):
        if not is_alive(w.pid):
            raise ServiceStartError(
                f"{w.name} ({w.roles}) exited while starting; see {directory / f'{w.name}.log'}"
            )
        if time.monotonic() >= deadline:
            raise ServiceStartError(
                f"{w.name} ({w.roles}) serves no /metrics on {HOST}:{w.port} after {timeout:g}s;"
                f" see {directory / f'{w.name}.log'}"
            )
        time.sleep(0.1)


def stop_workers(settings: Settings, *, timeout: float = 30.0) -> dict[str, int | None]:
    """SIGTERM every local worker (each finishes and commits its batch), stream workers first."""
    directory = workers_dir(settings)
    if not directory.is_dir():
        return {}
    names = sorted((p.stem for p in directory.glob("worker-*.pid")), key=_number, reverse=True)
    stopped: dict[str, int | None] = {}
    for name in names:
        pid = running_worker(directory, name)
        if pid is not None:
            try:
                stop_process(pid, timeout=timeout)
            except ServiceError:
                pass  # reported by status; the pid file goes anyway
        pid_file(directory, name).unlink(missing_ok=True)
        port_file(directory, name).unlink(missing_ok=True)
        remove_scrape_target(scrape_targets_dir(settings.services.run_dir), name)
        stopped[name] = pid
    return stopped


def worker_statuses(settings: Settings) -> list[tuple[str, int | None, int | None, bool]]:
    """``(name, pid, metrics port, answering)`` of every recorded local worker."""
    directory = workers_dir(settings)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("worker-*.pid"), key=lambda p: _number(p.stem)):
        name = path.stem
        pid = running_worker(directory, name)
        port = read_pid(port_file(directory, name))
        out.append(
            (
                name,
                pid,
                port,
                pid is not None and port is not None and http_ready(HOST, port, "/metrics"),
            )
        )
    return out


def _number(name: str) -> int:
    return int(name.rpartition("-")[2]) if name.rpartition("-")[2].isdigit() else -1
