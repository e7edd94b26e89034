"""Small, dependency-free checks on ports and processes, used by `cli._procs`.

Everything here answers one question quickly and never raises for the
ordinary "no" answer (a closed port, a dead process).
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import subprocess
from pathlib import Path


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) ``host:port``.

    ``SO_REUSEADDR`` is set so that sockets lingering in TIME_WAIT after a
    service stopped do not count as "in use"; the servers we start set it too.

    Examples
    --------
    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0))
    ...     s.listen()
    ...     port_in_use("127.0.0.1", s.getsockname()[1])
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def tcp_ready(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis server at ``host:port`` answers ``PING`` with ``+PONG``.

    Uses the inline command form so no client library is needed.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_ready(host: str, port: int, path: str = "/-/ready", timeout: float = 0.5) -> bool:
    """Whether ``GET http://host:port/path`` answers 200.

    ``http.client`` is used directly so that ``http_proxy`` variables in the
    environment cannot send a loopback check through a proxy.
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def process_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``R``, ``S``, ``Z``…), or None if it is gone.

    Reads ``/proc/PID/stat``; elsewhere falls back to ``ps -o stat= -p PID``.

    Examples
    --------
    >>> process_state(os.getpid()) in {"R", "S", "D"}
    True
    """
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        # The command name in parentheses may contain spaces: split after its ")".
        return text.rpartition(")")[2].split()[0]
    result = subprocess.run(  # noqa: S603 -- fixed argv, no shell
        ["ps", "-o", "stat=", "-p", str(pid)],  # noqa: S607 -- ps from PATH on purpose
        capture_output=True,
        text=True,
        check=False,
    )
    state = result.stdout.strip()
    return state[0] if state else None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie.

    A killed child stays a zombie until its parent reaps it (or forever when
    the parent is gone and PID 1 does not reap), so ``kill -0`` is not enough.
    """
    state = process_state(pid)
    return state is not None and state not in {"Z", "X"}


def process_name(pid: int) -> str | None:
    """The base name of ``pid``'s executable as its command line shows it, or None.

    Redis rewrites its title to ``redis-server 127.0.0.1:PORT`` in one
    argument, so only the first word is taken.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    first = raw.split(b"\0", 1)[0].decode(errors="replace").split(" ", 1)[0]
    return os.path.basename(first) or None
