"""Errors a person can act on: one line that names what, where it came from and the fix.

Without these a person sees the failure from deep inside Faust, aiokafka,
redis-py or pandas (38 lines of traceback for a broker that is simply not
running). :func:`fail` prints the line and exits with a status that says what
kind of problem it was; :func:`require_services` checks, before a command
starts, that the broker and Redis it needs answer.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import redis as redis_py
import typer
from rich.console import Console
from rich.markup import escape

from cli._probes import tcp_ready
from config.checks import placeholder_secrets
from config.settings import Settings
from streaming.producer import bootstrap_servers

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

#: A setting, a secret or an argument is wrong (Click's status for usage errors).
EXIT_CONFIG = 2
#: The input data cannot be used as it is (sysexits' EX_DATAERR).
EXIT_DATA = 65
#: sysexits' EX_UNAVAILABLE: a service the command needs does not answer.
EXIT_UNAVAILABLE = 69

_START_HINT = "is it running? `leadstream services up` starts a local one"


def broker_problem(bootstrap: str, timeout: float = 2.0) -> str | None:
    """Why no broker of ``bootstrap`` can be reached, or None when one accepts a connection.

    >>> broker_problem("kafka://127.0.0.1:1")
    'no Kafka broker answers at 127.0.0.1:1 (LEADSTREAM_KAFKA__BOOTSTRAP): is it running? `leadstream services up` starts a local one'
    """
    hosts = bootstrap_servers(bootstrap).split(",")
    for hostport in hosts:
        host, _, port = hostport.rpartition(":")
        if port.isdigit() and tcp_ready(host.strip("[]"), int(port), timeout):
            return None
    return (
        f"no Kafka broker answers at {', '.join(hosts)} (LEADSTREAM_KAFKA__BOOTSTRAP): "
        f"{_START_HINT}"
    )


def redis_problem(url: str, shown: str, timeout: float = 2.0) -> str | None:
    """Why Redis at ``url`` cannot be used, or None when it answers PING.

    ``shown`` is the URL as it may be printed (its password masked).

    >>> redis_problem("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0")
    'Redis does not answer at redis://127.0.0.1:1/0 (LEADSTREAM_REDIS__URL): is it running? `leadstream services up` starts a local one'
    """
    client = redis_py.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    except redis_py.AuthenticationError:
        return f"Redis at {shown} refused the login (LEADSTREAM_REDIS__URL): check its password"
    except (redis_py.ConnectionError, redis_py.TimeoutError, OSError):
        return f"Redis does not answer at {shown} (LEADSTREAM_REDIS__URL): {_START_HINT}"
    except redis_py.ResponseError as exc:
        return f"Redis at {shown} (LEADSTREAM_REDIS__URL) answered PING with an error: {exc}"
    finally:
        client.close()
    return None


def require_services(settings: Settings, *, broker: bool = False, redis: bool = False) -> None:
    """Exit with one line per missing service (status 69) unless the asked-for ones answer."""
    problems = []
    if broker:
        problems.append(broker_problem(settings.kafka.bootstrap))
    if redis:
        problems.append(redis_problem(settings.redis.url, settings.masked()["redis"]["url"]))
    found = [p for p in problems if p]
    if found:
        fail("\n".join(found), EXIT_UNAVAILABLE)


def refuse_placeholder_secrets(settings: Settings) -> None:
    """Exit (status 2) if a secret still holds a public placeholder from ``.env.example``."""
    found = placeholder_secrets(settings)
    if found:
        fail("\n".join(found), EXIT_CONFIG)


def store_problem(settings: Settings, exc: Exception) -> str:
    """One line for a ClickHouse store that would not open, with the fix.

    chDB (the embedded store) opens a data directory in one process only. A running
    worker shares it (its store relay), so this is another command holding it: a
    ``serve``, ``report`` or ``demo``, which do not share it.

    >>> from config.settings import load_settings
    >>> s = load_settings(clickhouse={"chdb_path": "var/chdb"})
    >>> store_problem(s, RuntimeError("Failed to create connection: Code: 36"))  # doctest: +ELLIPSIS
    'the store var/chdb is in use by another process that does not share it (a `leadstream serve`, `report` or `demo`?): ...'
    """
    cfg = settings.clickhouse
    if cfg.dsn:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"cannot use ClickHouse at {settings.masked()['clickhouse']['dsn']} "
            f"(LEADSTREAM_CLICKHOUSE__DSN): {detail}"
        )
    return (
        f"the store {cfg.chdb_path} is in use by another process that does not share it (a "
        "`leadstream serve`, `report` or `demo`?): chDB opens a data directory in one "
        "process only, and only a running `leadstream worker` shares it. Stop that process "
        "(start the worker first), or use a ClickHouse server (LEADSTREAM_CLICKHOUSE__DSN)"
    )


def open_store(settings: Settings) -> Client:
    """The configured ClickHouse client, or exit (status 69) with :func:`store_problem`."""
    from sinks.clickhouse import connect
    from sinks.exceptions import SinkError

    try:
        with native_stderr_held():
            return connect(settings.clickhouse)
    except SinkError as exc:
        fail(store_problem(settings, exc), EXIT_UNAVAILABLE)


@contextmanager
def native_stderr_held() -> Iterator[None]:
    """Hold what native code writes to file descriptor 2 inside the block; replay it on success.

    chDB prints its own ``Code: 76. DB::Exception: Cannot lock file …`` straight to the
    descriptor before raising. When the block fails, the exception says it (and
    :func:`store_problem` says it better), so the held text is dropped.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        os.write(2, held.read())


def fail(message: str, status: int) -> NoReturn:
    """Print ``error: message`` on standard error (no markup read from it) and exit ``status``."""
    for line in message.splitlines():
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(line)}")
    raise typer.Exit(status)
