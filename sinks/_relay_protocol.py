"""What a request to the store relay asks for, read from its HTTP parts without the engine.

The relay speaks the part of ClickHouse's HTTP interface that clickhouse-connect's
HTTP client uses (``clickhouse_connect/driver/_backend/httpcommon.py`` plans the
requests): the SQL in the ``query`` URL parameter, in the body, or in both (then
joined by a newline, as ClickHouse does); ``param_<name>`` bind values in the URL
or in a ``multipart/form-data`` body (the client switches to a form when the binds
are long); ``database``; settings as plain URL parameters; inserts as
``INSERT INTO t (cols) FORMAT Native`` followed by the data, either in the
``query`` parameter or on the first line of the body.

Parameters that steer ClickHouse's HTTP handler (sessions, compression, progress
headers, ``wait_end_of_query`` …) are not settings: the engine would reject them
as unknown, so they are dropped here, as clickhouse-connect's chDB backend drops
its ``CHDB_TRANSPORT_SETTINGS``.
"""

from __future__ import annotations

import base64
import gzip
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

__all__ = ["RelayRequest", "RequestError", "credentials", "parse_request"]

# clickhouse-connect's CHDB_TRANSPORT_SETTINGS, plus the handler's own parameters
# (``query``, credentials, ``default_format``…). tests/sinks/test_store_relay.py checks
# that this stays a superset of the installed clickhouse-connect's set.
TRANSPORT_PARAMS = frozenset(
    {
        "database", "buffer_size", "session_id", "session_timeout", "session_check",
        "query_id", "quota_key", "compress", "decompress", "wait_end_of_query",
        "client_protocol_version", "role", "send_progress_in_http_headers",
        "http_headers_progress_interval_ms", "enable_http_compression",
        "query", "default_format", "user", "password", "stacktrace", "close_session",
    }
)  # fmt: skip

# The first line of an insert whose data follows: clickhouse-connect writes
# ``INSERT INTO t (cols) FORMAT Native\n`` and then the Native bytes.
_INSERT_HEAD = re.compile(
    rb"\A\s*(INSERT\s+INTO\s[^\n]*?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n|\Z)", re.I
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RequestError(Exception):
    """A request the relay refuses, with the ClickHouse error code and HTTP status to answer."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class RelayRequest:
    """One statement to run, and how.

    ``data`` is set for an insert whose rows came with the request: ``sql`` is then the
    ``INSERT INTO …`` head without its ``FORMAT`` clause and ``insert_format`` names
    the data's format.
    """

    sql: str
    database: str = "default"
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    query_id: str = ""
    default_format: str | None = None
    data: bytes | None = None
    insert_format: str | None = None


def parse_request(query_string: str, headers: Mapping[str, str], body: bytes) -> RelayRequest:
    """Read one ClickHouse HTTP request.

    Examples
    --------
    >>> r = parse_request("database=db&param_n=3&max_threads=2&wait_end_of_query=1&query_id=q1",
    ...                   {}, b"SELECT {n:UInt8}")
    >>> (r.sql, r.database, r.params, r.settings, r.query_id)
    ('SELECT {n:UInt8}', 'db', {'n': '3'}, {'max_threads': '2'}, 'q1')
    >>> r = parse_request("", {}, b"INSERT INTO t (`a`) FORMAT Native\\n\\x01\\x02")
    >>> (r.sql, r.insert_format, r.data)
    ('INSERT INTO t (`a`)', 'Native', b'\\x01\\x02')
    >>> parse_request("query=SELECT%201", {}, b"").sql
    'SELECT 1'
    """
    fields = dict(parse_qsl(query_string, keep_blank_values=True))
    content_type = _header(headers, "Content-Type") or ""
    if content_type.lower().startswith("multipart/form-data"):
        fields.update(_form_fields(content_type, body))
        body = b""
    else:
        body = _decoded(body, _header(headers, "Content-Encoding"))
    if fields.get("decompress", "0") not in ("", "0"):
        raise RequestError(
            48, "the store relay does not read ClickHouse's compressed blocks (decompress=1)"
        )
    query = fields.get("query", "")
    sql, data, insert_format = _statement(query, body)
    params = {k[6:]: v for k, v in fields.items() if k.startswith("param_")}
    settings = {
        k: v for k, v in fields.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")
    }
    for name in settings:
        if not _SETTING_NAME.match(name):
            raise RequestError(115, f"Unknown setting '{name}': not a setting name")
    if "readonly" in settings:
        # Applied with SET, readonly could never be lifted on the relay's handle again.
        raise RequestError(164, "the store relay does not take the readonly setting")
    return RelayRequest(
        sql=sql,
        database=fields.get("database") or _header(headers, "X-ClickHouse-Database") or "default",
        params=params,
        settings=settings,
        query_id=fields.get("query_id") or str(uuid.uuid4()),
        default_format=fields.get("default_format") or _header(headers, "X-ClickHouse-Format"),
        data=data,
        insert_format=insert_format,
    )


def credentials(query_string: str, headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The user and password a request carries, in any of the ways ClickHouse reads them.

    Examples
    --------
    >>> credentials("", {"Authorization": "Basic " + base64.b64encode(b"u:p w").decode()})
    ('u', 'p w')
    >>> credentials("", {"X-ClickHouse-User": "u", "X-ClickHouse-Key": "k"})
    ('u', 'k')
    >>> credentials("user=u&password=x", {})
    ('u', 'x')
    >>> credentials("", {}) is None
    True
    """
    auth = _header(headers, "Authorization") or ""
    if auth[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password
    header_user = _header(headers, "X-ClickHouse-User")
    if header_user is not None:
        return header_user, _header(headers, "X-ClickHouse-Key") or ""
    fields = dict(parse_qsl(query_string, keep_blank_values=True))
    if "user" in fields:
        return fields["user"], fields.get("password", "")
    return None


def _statement(query: str, body: bytes) -> tuple[str, bytes | None, str | None]:
    """(SQL, insert data, insert format) from the ``query`` parameter and the body."""
    if query:
        head = _INSERT_HEAD.match(query.encode())
        if head is not None and head.end() == len(query.encode().rstrip()) and body:
            return head[1].decode(), body, head[2].decode()
        return (f"{query}\n{_text(body)}" if body else query), None, None
    head = _INSERT_HEAD.match(body)
    if head is not None:
        data = body[head.end() :]
        if data:
            return head[1].decode(), data, head[2].decode()
    sql = _text(body)
    if not sql.strip():
        raise RequestError(62, "Empty query: no query parameter and an empty body")
    return sql, None, None


def _text(body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise RequestError(36, f"the query is not UTF-8 text: {exc}") from exc


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """The body without its Content-Encoding (clickhouse-connect compresses inserts)."""
    name = (encoding or "identity").strip().lower()
    try:
        if name == "identity":
            return body
        if name == "gzip":
            return gzip.decompress(body)
        if name == "deflate":
            return zlib.decompress(body)
        if name == "lz4":
            import lz4.frame  # clickhouse-connect's own choice when lz4 is installed

            return bytes(lz4.frame.decompress(body))
    except ImportError:
        pass
    except (OSError, ValueError, EOFError, RuntimeError, zlib.error) as exc:
        raise RequestError(354, f"cannot decompress the {name} body: {exc}") from exc
    raise RequestError(
        48, f"the store relay does not read {name}-encoded bodies (use gzip, deflate or lz4)", 415
    )


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The text fields of a ``multipart/form-data`` body (the query and its binds)."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    out: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise RequestError(48, "the store relay does not take external data (form files)")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            out[name] = _text(payload if isinstance(payload, bytes) else b"")
    return out


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value
