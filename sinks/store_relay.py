"""The store relay: the process that owns a chDB store answers ClickHouse HTTP for the others.

chDB opens a data directory in one process only. The process that owns it (the
worker, in the embedded mode) runs a :class:`StoreRelay`: a small HTTP server on
127.0.0.1 that speaks the part of ClickHouse's HTTP interface clickhouse-connect's
HTTP client uses, and runs each request on its own chDB handle of the owner's
engine. Every other command (``serve``, ``report`` …) then reaches the store with
clickhouse-connect's ordinary HTTP client, the same client code as production:
:func:`sinks.clickhouse.connect` finds the relay and returns that client when the
directory is held.

For the owner::

    lock = threading.Lock()            # the same lock around the owner's own chDB calls
    client = connect(settings.clickhouse)
    relay = start_relay(client, lock, settings.clickhouse.chdb_path)
    try:
        ...                            # consume, insert with `with lock: ...`
    finally:
        relay.stop()

:meth:`StoreRelay.start` writes ``<chdb_path>/relay.json`` (mode 0600: url, user,
password, pid); :meth:`StoreRelay.stop` removes it. :func:`find_relay` returns that
address only while its process lives and its relay answers ``/ping``.

What the relay speaks: ``POST /`` and ``GET /?query=`` (reads only) with the SQL
in the ``query`` parameter and/or the body, ``param_*`` binds (URL or
multipart form), ``database``, settings as URL parameters (HTTP-handler
parameters such as ``session_id``, ``wait_end_of_query`` or
``enable_http_compression`` are dropped), ``default_format`` and trailing
``FORMAT`` clauses, inserts as ``INSERT … FORMAT <fmt>`` followed by their data
(gzip, deflate or lz4 Content-Encoding), ``GET /ping``; the headers
X-ClickHouse-Query-Id, -Format, -Timezone, -Summary and, on errors,
-Exception-Code with ClickHouse's ``Code: N. DB::Exception: …`` text. A random
password, made at start, is required (Basic auth, X-ClickHouse-User/Key or
``user``/``password`` parameters); a request without it gets 401, code 516.

Not spoken: sessions (``SET``/``USE`` statements last for their request only, as
over HTTP without a session; temporary tables are not isolated), external data,
ClickHouse's own compressed blocks (``compress``/``decompress=1``), response
compression (answers are identity-encoded, which every client accepts), progress
headers, streaming (a result is built in memory, then sent), the ``readonly``
setting, and cancelling a query when its client goes away.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from clickhouse_connect.driver.client import Client

from sinks._relay_engine import RelayEngine
from sinks._relay_http import RELAY_USER, RelayServer

__all__ = ["RELAY_FILE", "RelayAddress", "StoreRelay", "find_relay", "start_relay"]

log = structlog.get_logger(__name__)

RELAY_FILE = "relay.json"


@dataclass(frozen=True)
class RelayAddress:
    """Where a store relay answers and how to log in (what ``relay.json`` holds).

    Examples
    --------
    >>> a = RelayAddress("http://127.0.0.1:8123", "leadstream", "secret", 42)
    >>> (a.host, a.port, a)
    ('127.0.0.1', 8123, RelayAddress(url='http://127.0.0.1:8123', user='leadstream', pid=42))
    """

    url: str
    user: str
    password: str = field(repr=False)
    pid: int

    @property
    def host(self) -> str:
        """The relay's host, ``127.0.0.1``."""
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        """The relay's TCP port."""
        return urlsplit(self.url).port or 80


class StoreRelay:
    """ClickHouse's HTTP interface over this process's chDB engine, on a background thread.

    Parameters
    ----------
    chdb_path
        The chDB data directory this process has open; ``relay.json`` is written there.
    lock
        The owner's lock: held around every call the relay makes into chDB.
    host
        The address to listen on (loopback: the relay is for this machine's processes).
    port
        The port; 0 takes any free one.

    Examples
    --------
    >>> relay = StoreRelay("var/chdb", threading.Lock())  # no I/O until start()
    >>> (str(relay.chdb_path), relay.host, relay.port)
    ('var/chdb', '127.0.0.1', 0)
    """

    def __init__(
        self, chdb_path: str | Path, lock: threading.Lock, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.chdb_path = Path(chdb_path)
        self.lock = lock
        self.host = host
        self.port = port
        self._password = secrets.token_urlsafe(24)
        self._engine: RelayEngine | None = None
        self._server: RelayServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> RelayAddress:
        """Where the relay answers (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("the store relay is not started")
        host, port = self._server.server_address[:2]
        return RelayAddress(f"http://{host!s}:{port}", RELAY_USER, self._password, os.getpid())

    def start(self) -> StoreRelay:
        """Open the relay's chDB handle, listen, and write ``relay.json``."""
        if self._server is not None:
            raise RuntimeError("the store relay is already started")
        engine = RelayEngine(os.path.realpath(self.chdb_path), self.lock)
        engine.open()
        try:
            server = RelayServer((self.host, self.port), engine, self._password)
        except OSError:
            engine.close()
            raise
        self._engine, self._server = engine, server
        self._thread = threading.Thread(
            target=server.serve_forever, name="leadstream-store-relay", daemon=True
        )
        self._thread.start()
        try:
            _write_address(self.chdb_path / RELAY_FILE, self.address)
        except OSError:
            self.stop()
            raise
        log.info("relay.started", url=self.address.url, chdb_path=str(self.chdb_path))
        return self

    def stop(self) -> None:
        """Remove ``relay.json``, stop listening, close open connections and the handle."""
        if self._server is None:
            return
        address, server, self._server = self.address, self._server, None
        _remove_address(self.chdb_path / RELAY_FILE, address)
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        log.info("relay.stopped", url=address.url)

    def __enter__(self) -> StoreRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_relay(
    client_or_path: Client | str | Path, lock: threading.Lock, chdb_path: str | Path
) -> StoreRelay:
    """Start a :class:`StoreRelay` for the chDB store this process owns.

    ``client_or_path`` is the owner's chDB client (checked to be on ``chdb_path``) or
    the directory itself; the relay opens its own handle on the same engine.
    """
    if not isinstance(client_or_path, (str, Path)):
        uri = str(getattr(client_or_path, "uri", ""))
        if not uri.startswith("chdb://"):
            raise ValueError(f"a store relay serves a chDB client, not {uri or client_or_path!r}")
        client_or_path = uri.removeprefix("chdb://")
    if os.path.realpath(client_or_path) != os.path.realpath(chdb_path):
        raise ValueError(f"the client's store {client_or_path} is not {chdb_path}")
    return StoreRelay(chdb_path, lock).start()


def find_relay(chdb_path: str | Path, timeout: float = 2.0) -> RelayAddress | None:
    """The relay serving ``chdb_path``: its ``relay.json``, if its process lives and it answers.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     find_relay(d) is None
    True
    """
    path = Path(chdb_path) / RELAY_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        address = RelayAddress(
            str(raw["url"]), str(raw["user"]), str(raw["password"]), int(raw["pid"])
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("relay.unreadable", path=str(path), error=str(exc))
        return None
    if not _alive(address.pid):
        log.info("relay.stale", path=str(path), pid=address.pid)
        return None
    if not _pings(address, timeout):
        log.info("relay.not_answering", url=address.url, pid=address.pid)
        return None
    return address


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _pings(address: RelayAddress, timeout: float) -> bool:
    conn = http.client.HTTPConnection(address.host, address.port, timeout=timeout)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"Ok.\n"
    except OSError:
        return False
    finally:
        conn.close()


def _write_address(path: Path, address: RelayAddress) -> None:
    """Write ``relay.json`` whole (a temporary file renamed), readable by its owner only."""
    payload = {"url": address.url, "user": address.user, "password": address.password,
               "pid": address.pid}  # fmt: skip
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(payload, out)
    os.replace(tmp, path)


def _remove_address(path: Path, address: RelayAddress) -> None:
    """Remove ``relay.json`` if it is still this relay's."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if raw.get("pid") == address.pid and raw.get("url") == address.url:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
