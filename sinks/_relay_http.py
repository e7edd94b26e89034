"""The store relay's HTTP side: a threaded server and the handler of one connection.

Each connection gets a thread (``ThreadingHTTPServer``) and is kept alive between
requests, as clickhouse-connect pools its connections. The handler checks the
relay's password, reads the request (:mod:`sinks._relay_protocol`), runs it on the
relay's engine (:mod:`sinks._relay_engine`) and answers with the headers
clickhouse-connect reads.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog

from sinks._relay_engine import EngineOutcome, RelayEngine
from sinks._relay_protocol import RequestError, credentials, parse_request

__all__ = ["RELAY_USER", "RelayServer"]

log = structlog.get_logger("sinks.store_relay")

RELAY_USER = "leadstream"
_MAX_BODY = 512 * 1024 * 1024  # an insert larger than this is refused (413)
_IDLE_S = 30.0  # a kept-alive connection with no request for this long is closed


class RelayServer(ThreadingHTTPServer):
    """Threads per connection; knows its open connections so that stop can close them."""

    daemon_threads = True
    relay_engine: RelayEngine
    relay_password: str

    def __init__(self, address: tuple[str, int], engine: RelayEngine, password: str) -> None:
        super().__init__(address, _Handler)
        self.relay_engine = engine
        self.relay_password = password
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def track(self, conn: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (the client left, or :meth:`close_connections`): log it.

        socketserver's default prints a traceback to standard error.
        """
        log.info("relay.connection_error", client=str(client_address), exc_info=True)

    def close_connections(self) -> None:
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """One connection: ClickHouse's ``/ping``, and queries on ``/``."""

    protocol_version = "HTTP/1.1"  # keep-alive: clickhouse-connect pools its connections
    server_version = "leadstream-store-relay"
    timeout = _IDLE_S
    server: RelayServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer back by ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/") and not url.query:
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        elif url.path == "/":
            self._execute(url.query, b"", read_only=True)
        else:
            self._refuse(RequestError(1002, f"There is no handle {url.path}", 404))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        try:
            # Who asks is checked before the body is read: a stranger's upload is not taken in.
            self._check_password(url.query)
            body = self._body()
        except RequestError as exc:
            self.close_connection = True  # the rest of the body is not read
            log.info("relay.refused", code=exc.code, status=exc.status, error=str(exc)[:300])
            self._refuse(exc)
            return
        if url.path != "/":
            self._refuse(RequestError(1002, f"There is no handle {url.path}", 404))
            return
        self._execute(url.query, body, read_only=False)

    def _check_password(self, query_string: str) -> None:
        given = credentials(query_string, dict(self.headers.items()))
        if given is None or not (
            hmac.compare_digest(given[0].encode(), RELAY_USER.encode())
            and hmac.compare_digest(given[1].encode(), self.server.relay_password.encode())
        ):
            raise RequestError(
                516,
                f"{(given or ('default', ''))[0]}: Authentication failed: password is"
                " incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                401,
            )

    def _execute(self, query_string: str, body: bytes, read_only: bool) -> None:
        started = time.perf_counter()
        engine = self.server.relay_engine
        try:
            if read_only:  # a POST checked the password before reading its body
                self._check_password(query_string)
            request = parse_request(query_string, dict(self.headers.items()), body)
            outcome = engine.execute(request, read_only=read_only)
        except RequestError as exc:
            log.info("relay.query_failed", code=exc.code, status=exc.status, error=str(exc)[:300])
            self._refuse(exc)
            return
        self._answer(outcome, request.query_id, engine.timezone)
        log.debug(
            "relay.query",
            query_id=request.query_id,
            ms=round((time.perf_counter() - started) * 1e3, 2),
        )

    def _answer(self, outcome: EngineOutcome, query_id: str, timezone: str) -> None:
        headers = {
            "Content-Type": "application/octet-stream"
            if outcome.fmt not in (None, "TabSeparated", "TSV")
            else "text/tab-separated-values; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": timezone,
            "X-ClickHouse-Summary": json.dumps(outcome.summary),
        }
        if outcome.fmt is not None:
            headers["X-ClickHouse-Format"] = outcome.fmt
        self._send(200, outcome.body, headers)

    def _refuse(self, exc: RequestError) -> None:
        text = str(exc)
        if not text.startswith("Code: "):
            text = f"Code: {exc.code}. DB::Exception: {text}"
        self._send(exc.status, f"{text}\n".encode(), {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
        })  # fmt: skip

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        """The request body, by Content-Length or chunked (urllib3 chunks streamed inserts)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError as exc:
                    raise RequestError(33, f"a malformed chunk size {line[:40]!r}") from exc
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                size += length
                if size > _MAX_BODY:
                    raise RequestError(241, f"the request body is over {_MAX_BODY} bytes", 413)
                parts.append(self.rfile.read(length))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise RequestError(33, "a malformed Content-Length") from exc
        if length < 0 or length > _MAX_BODY:
            raise RequestError(241, f"the request body is over {_MAX_BODY} bytes", 413)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:  # stdlib's parameter name
        """Access lines go to structlog at debug level, not to standard error."""
        log.debug("relay.http", line=format % args)
