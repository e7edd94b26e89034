"""Authentication, security headers and request limits of the dashboard and API.

Authentication accepts a bearer token, HTTP basic user/password, or a session
cookie that ``/login?token=…`` sets for browsers. The cookie holds an HMAC of
the token, never the token, and is HttpOnly and SameSite=Strict. A browser without
credentials gets the login page (:mod:`api._login_page`), an API client the JSON 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import structlog
from fastapi import Request, Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api._errors import error_response
from api._login_page import login_page, prefers_html
from config.settings import ApiSettings

log = structlog.get_logger(__name__)

COOKIE = "leadstream_session"
#: Longest accepted URL (path and query string), in bytes.
MAX_URL = 2048
#: Query parameters any endpoint accepts; anything else is a 400.
KNOWN_PARAMS = frozenset(
    {"start", "end", "channel", "campaign_id", "industry", "country", "size_bucket", "seniority",
     "band", "by", "limit", "hours", "token", "period", "for",
     "model", "compare", "lookback_days", "half_life_days"}
)  # fmt: skip
# Paths reachable without credentials: liveness, Prometheus scrapes, the login itself.
OPEN_PATHS = frozenset({"/healthz", "/metrics", "/login"})

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Authenticator:
    """Checks credentials against the settings; ``enabled=False`` lets everything through."""

    def __init__(self, cfg: ApiSettings) -> None:
        self.enabled = cfg.auth_enabled
        self._token = cfg.token.get_secret_value().encode() if cfg.token else None
        self._user = cfg.username.encode() if cfg.username else None
        self._password = cfg.password.get_secret_value().encode() if cfg.password else None
        if self.enabled and not self._token and not (self._user and self._password):
            raise ValueError(
                "the API requires authentication but no credentials are set: set "
                "LEADSTREAM_API__TOKEN (or LEADSTREAM_API__USERNAME and LEADSTREAM_API__PASSWORD) "
                "in the environment or a secrets file, or LEADSTREAM_API__AUTH_ENABLED=false "
                "for a local demo"
            )

    @property
    def password_set(self) -> bool:
        """Whether HTTP basic user and password are accepted."""
        return bool(self._user and self._password)

    def session_value(self) -> str:
        """The cookie value for a browser that logged in with the token."""
        assert self._token is not None
        return hmac.new(self._token, b"leadstream-session", hashlib.sha256).hexdigest()

    def token_ok(self, token: str) -> bool:
        """Whether ``token`` is the configured bearer token (constant time)."""
        return self._token is not None and hmac.compare_digest(token.encode(), self._token)

    def allowed(self, request: Request) -> bool:
        """Whether the request carries valid credentials (or authentication is off)."""
        if not self.enabled:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            return self.token_ok(value.strip())
        if scheme.lower() == "basic" and value and self._user and self._password:
            try:
                user, _, password = base64.b64decode(value.strip()).partition(b":")
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(user, self._user) & hmac.compare_digest(
                password, self._password
            )
        cookie = request.cookies.get(COOKIE)
        if cookie and self._token:
            return hmac.compare_digest(cookie, self.session_value())
        return False

    def schemes(self) -> list[str]:
        """The credentials accepted (names of the OpenAPI security schemes); none when off."""
        if not self.enabled:
            return []
        names = ["bearer"] if self._token else []
        if self._user and self._password:
            names.append("basic")
        if self._token:
            names.append("session")
        return names

    def challenge(self) -> dict[str, str]:
        """``WWW-Authenticate`` for a 401: basic (the browser asks) when a password is set."""
        if self._user and self._password:
            return {"WWW-Authenticate": 'Basic realm="leadstream", charset="UTF-8"'}
        return {"WWW-Authenticate": 'Bearer realm="leadstream"'}


class Guard:
    """ASGI middleware: limits, authentication, then security headers on every answer.

    An exception that escapes a view becomes a 500 in the API's error format here, so
    that it carries the headers too (Starlette's own 500 page is outside this
    middleware). Plain ASGI rather than ``@app.middleware("http")``, whose wrapper
    runs every request through an extra task and stream, which costs a cached
    answer about as much as the answer itself.
    """

    def __init__(self, app: ASGIApp, auth: Authenticator) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith("/api/")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        refused = await _check(Request(scope), self.auth)
        if refused is not None:
            await refused(scope, receive, send_with_headers)
            return
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:  # a bug: logged with its trace, answered without details
            log.exception("api.unhandled_error", path=scope["path"])
            if started:  # too late for another answer
                raise
            answer = error_response(500, "internal error; the server log has the details")
            await answer(scope, receive, send_with_headers)


async def _check(request: Request, auth: Authenticator) -> Response | None:
    url_bytes = len(request.url.path) + len(request.url.query)
    if url_bytes > MAX_URL:
        return _error(414, f"the URL is {url_bytes} bytes long; the limit is {MAX_URL}")
    keys = [k for k, _ in request.query_params.multi_items()]
    unknown = sorted(set(keys) - KNOWN_PARAMS)
    if unknown:
        return _error(400, f"unknown query parameter(s) {unknown}; known: {sorted(KNOWN_PARAMS)}")
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        return _error(400, f"query parameter(s) {repeated} given more than once")
    if request.url.path not in OPEN_PATHS and not auth.allowed(request):
        if request.method in ("GET", "HEAD") and prefers_html(request.headers.get("accept", "")):
            # A browser opening a page: say how to log in rather than show JSON.
            return login_page(401, basic=auth.password_set, headers=auth.challenge())
        return error_response(
            401, "authentication required: a bearer token or user and password",
            headers=auth.challenge(),
        )  # fmt: skip
    return None


def _error(status: int, detail: str) -> Response:
    return error_response(status, detail)
