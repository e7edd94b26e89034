"""The relay's own chDB handle: runs one parsed request under the owner's lock.

The handle is a second connection to the engine the owning process already
hosts (chDB allows any number of handles on one engine), so ``USE`` and
``SET`` on it never touch the owner's client. Every call holds the owner's
lock: the owner's inserts and the relay's requests never run at once.

Settings arrive with every HTTP request (clickhouse-connect repeats its client
settings on each one). They are applied with ``SET`` and remembered: a request
changes only what differs from the one before, and resets to ``DEFAULT`` what it
no longer names, so no request sees another's settings and the usual request
costs no extra engine call.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

import chdb

from sinks._relay_protocol import RelayRequest, RequestError

__all__ = ["EngineOutcome", "RelayEngine"]

_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*\Z", re.I)
_CODE = re.compile(r"Code:\s*(\d+)")
# Over HTTP without a session, SET and USE last for their own request only.
_SESSION_STATEMENT = re.compile(r"\A\s*(SET|USE)\s", re.I)
_READ_STATEMENT = re.compile(
    r"\A\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I
)
_TSV = ("TabSeparated", "TSV")


@dataclass(frozen=True)
class EngineOutcome:
    """What a request produced: the body, its format (when it is a result set), statistics."""

    body: bytes
    fmt: str | None
    summary: dict[str, str]


class RelayEngine:
    """A chDB handle on ``path`` used under ``lock``.

    Parameters
    ----------
    path
        The chDB data directory (the engine this process hosts).
    lock
        The owner's lock around every call into chDB.
    """

    def __init__(self, path: str, lock: threading.Lock) -> None:
        self.path = path
        self.lock = lock
        self.timezone = "UTC"
        self.version = ""
        self._conn: Any = None
        self._database = "default"
        self._settings: dict[str, str] = {}

    def open(self) -> None:
        """Open the handle and read the engine's version and timezone."""
        with self.lock:
            self._conn = chdb.connect(self.path)  # type: ignore[no-untyped-call]  # chdb ships no types
            row = self._conn.query("SELECT version(), timezone()", "TabSeparated").bytes()
        self.version, self.timezone = row.decode().rstrip("\n").split("\t")

    def close(self) -> None:
        """Close the handle (waits for a request in progress)."""
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def execute(self, request: RelayRequest, read_only: bool = False) -> EngineOutcome:
        """Run ``request``; raises :class:`RequestError` with ClickHouse's code and message."""
        if _SESSION_STATEMENT.match(request.sql):
            return EngineOutcome(b"", None, {})
        if read_only and (request.data is not None or not _READ_STATEMENT.match(request.sql)):
            raise RequestError(
                164, "Cannot execute a query that writes in a GET request (READONLY)"
            )
        with self.lock:
            if self._conn is None:
                raise RequestError(210, "the store relay is stopping", 503)
            try:
                self._use(request.database)
                self._apply(request.settings)
                if request.data is not None:
                    return self._insert(request)
                return self._query(request)
            except RequestError:
                raise
            except Exception as exc:  # chDB raises its own ChdbError/RuntimeError types
                raise _engine_error(exc) from exc

    def _use(self, database: str) -> None:
        if database != self._database:
            self._conn.query(f"USE {_quote_identifier(database)}", "TabSeparated")
            self._database = database

    def _apply(self, settings: dict[str, str]) -> None:
        for name in [n for n in self._settings if n not in settings]:
            self._conn.query(f"SET {name} = DEFAULT", "TabSeparated")
            del self._settings[name]
        for name, value in settings.items():
            if self._settings.get(name) != value:
                # A quoted literal: the engine casts it to the setting's type.
                self._conn.query(f"SET {name} = {_quote_string(value)}", "TabSeparated")
                self._settings[name] = value

    def _insert(self, request: RelayRequest) -> EngineOutcome:
        with self._conn.send_insert(request.sql, request.insert_format) as inserter:
            inserter.append(request.data)
            result = inserter.finish()
        summary = {
            "written_rows": str(result.rows_written),
            "written_bytes": str(result.bytes_written),
            "elapsed_ns": str(int(result.elapsed * 1e9)),
        }
        return EngineOutcome(b"", None, summary)

    def _query(self, request: RelayRequest) -> EngineOutcome:
        trailing = _TRAILING_FORMAT.search(request.sql)
        fmt = trailing[1] if trailing else request.default_format or "TabSeparated"
        if trailing is None and fmt in _TSV:
            # ClickHouse says whether a statement returned a result set in a header; chDB
            # has none, so ask for names: a result set always has that line, a DDL nothing.
            result = self._conn.query(request.sql, "TabSeparatedWithNames", params=request.params)
            body = result.bytes() or b""
            newline = body.find(b"\n")
            body, fmt_or_none = (body[newline + 1 :], fmt) if body else (b"", None)
        else:
            result = self._conn.query(request.sql, fmt, params=request.params)
            body, fmt_or_none = result.bytes() or b"", fmt
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return EngineOutcome(body, fmt_or_none, summary)


def _engine_error(exc: Exception) -> RequestError:
    """ClickHouse's ``Code: N. DB::Exception: …`` text and code from a chDB exception.

    >>> e = _engine_error(RuntimeError("x Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)"))
    >>> (e.code, e.status, str(e))
    (60, 404, 'Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)')
    """
    text = str(exc).strip()
    start = text.find("Code: ")
    text = text[start:] if start > 0 else text
    match = _CODE.match(text)
    code = int(match[1]) if match else 1001  # STD_EXCEPTION
    if match is None:
        text = f"Code: {code}. DB::Exception: {text or type(exc).__name__}. (STD_EXCEPTION)"
    # The statuses ClickHouse's HTTP handler gives these codes; any other is a 500.
    status = {60: 404, 81: 404, 62: 400, 47: 400, 46: 400, 43: 400, 36: 400, 115: 400}.get(
        code, 500
    )
    return RequestError(code, text, status)


def _quote_identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
