"""The ClickHouse clients the analytics views query through, so that users need not queue.

A ClickHouse server over HTTP answers any number of queries at once, and one
clickhouse-connect HTTP client sends them from many threads, as long as it has
no session (a session takes one query at a time): the pool hands that one
client to every caller, with no lock.

chDB runs in-process, and clickhouse-connect serialises the calls on each chDB
connection handle. Several handles on the same data directory share one engine
and run their queries in parallel: the pool opens ``size`` handles and lends
each to one caller at a time. Measured on two cores with 16 threads of mixed
views over two million events: 10.8 queries/s with one handle, 13.6 with two,
14.9 with four, 12.8 with eight, every answer identical to the serial one; four
is the default (``api.chdb_handles``). Opening a handle takes about 50 ms, so
handles are opened when requests overlap and then kept until the app stops.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

import structlog
from clickhouse_connect.driver.client import Client

log = structlog.get_logger(__name__)

__all__ = ["ClientPool", "is_chdb"]


def is_chdb(client: Client) -> bool:
    """Whether ``client`` is an in-process chDB client (its URI is ``chdb://…``)."""
    return str(getattr(client, "uri", "")).startswith("chdb://")


class ClientPool:
    """Lends clients to the views: a shared one, or one of several, each to one caller.

    Parameters
    ----------
    client
        The client the pool is made for; it stays open when the pool closes.
    exclusive
        Lend each client to one caller at a time (chDB handles, an HTTP client with a
        session); otherwise every caller gets ``client`` at once.
    size
        Most clients lent at once (exclusive pools).
    opener
        Opens one more client (a chDB handle on the same directory). A handle is opened
        only when every open one is lent out and fewer than ``size`` are open, so an
        app that never serves two requests at once holds no handle but ``client``.

    Examples
    --------
    >>> names = iter("bcd")
    >>> pool = ClientPool("a", exclusive=True, size=2, opener=lambda: next(names))
    >>> with pool.client() as c1, pool.client() as c2:
    ...     (c1, c2)
    ('a', 'b')
    >>> with pool.client() as c1:
    ...     c1
    'a'
    """

    def __init__(
        self,
        client: Client,
        exclusive: bool,
        size: int = 1,
        opener: Callable[[], Client] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a client pool lends at least one client, not {size}")
        self.exclusive = exclusive
        self.size = size
        self._opener = opener
        self._lock = threading.Lock()
        self._clients = [client]
        self._count = 1  # open clients, and slots being opened
        self._free: queue.LifoQueue[Client] = queue.LifoQueue()  # the warmest handle first
        self._free.put(client)

    @classmethod
    def for_client(
        cls, client: Client, chdb_handles: int = 4, opener: Callable[[str], Client] | None = None
    ) -> ClientPool:
        """The pool for ``client``: up to ``chdb_handles`` handles on chDB, shared on HTTP.

        ``opener(path)`` opens another chDB handle on the same directory (default:
        clickhouse-connect's chDB client).
        """
        if is_chdb(client):
            path = str(getattr(client, "path", ""))
            open_handle = opener or _open_chdb
            return cls(client, exclusive=True, size=chdb_handles, opener=lambda: open_handle(path))
        if client.get_client_setting("session_id"):
            log.warning(
                "api.client_has_session",
                hint="queries run one at a time; open the client with autogenerate_session_id=False",
            )
            return cls(client, exclusive=True)
        return cls(client, exclusive=False)

    @property
    def opened(self) -> int:
        """How many clients are open, the pool's own client included."""
        return self._count

    @contextlib.contextmanager
    def client(self) -> Iterator[Client]:
        """A client for one query (or a few in a row); waits while all are lent out."""
        if not self.exclusive:
            yield self._clients[0]
            return
        client = self._take()
        try:
            yield client
        finally:
            self._free.put(client)

    def _take(self) -> Client:
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._lock:  # reserve a slot; the handle opens outside the lock (~50 ms)
            grow = self._opener is not None and self._count < self.size
            self._count += grow
        if not grow or self._opener is None:
            return self._free.get()
        try:
            client = self._opener()
        except BaseException:
            with self._lock:
                self._count -= 1
            raise
        with self._lock:
            self._clients.append(client)
        return client

    def close(self) -> None:
        """Close the clients the pool opened (not the one it was made for)."""
        with self._lock:
            opened, self._clients = self._clients[1:], self._clients[:1]
            self._count = 1
        for client in opened:
            client.close()
        self._free = queue.LifoQueue()
        self._free.put(self._clients[0])


def _open_chdb(path: str) -> Client:
    import clickhouse_connect

    return clickhouse_connect.get_client(interface="chdb", path=path)
