"""`leadstream serve`: the dashboard and JSON API."""

from __future__ import annotations

import sys
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console

from cli._context import settings_from
from cli._errors import (
    EXIT_CONFIG,
    EXIT_UNAVAILABLE,
    fail,
    native_stderr_held,
    refuse_placeholder_secrets,
    store_problem,
)
from config.settings import Settings

console = Console(stderr=True)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address (default: api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: api.port)")] = None,
) -> None:
    """Serve the dashboard and the JSON API (OpenAPI at /openapi.json) until interrupted.

    Queries use LEADSTREAM_API__CLICKHOUSE_DSN (a read-only user) when set, else the
    ClickHouse settings; answers are cached in Redis. Authentication is required unless
    LEADSTREAM_API__AUTH_ENABLED=false: set LEADSTREAM_API__TOKEN or a user and password;
    the login URL for a browser is printed at start. With the embedded store (chDB, no
    LEADSTREAM_CLICKHOUSE__DSN) stop the worker first: one process opens it at a time.
    """
    import uvicorn

    from api.server import build_app, connect_readonly
    from sinks.exceptions import SinkError

    settings = settings_from(ctx)
    refuse_placeholder_secrets(settings)
    try:
        with native_stderr_held():
            client = connect_readonly(settings)
    except SinkError as exc:
        fail(store_problem(settings, exc), EXIT_UNAVAILABLE)
    try:
        built = build_app(settings, client)
    except (ValueError, SinkError) as exc:
        client.close()
        fail(f"cannot serve: {exc}", EXIT_CONFIG)
    bind_host = host or settings.api.host
    bind_port = settings.api.port if port is None else port
    url = f"http://{bind_host}:{bind_port}"
    console.print(login_line(settings, url, reveal=sys.stderr.isatty()), soft_wrap=True)
    try:
        uvicorn.run(
            built.app, host=bind_host, port=bind_port, log_level="warning", access_log=False
        )
    finally:
        client.close()


def login_line(settings: Settings, base: str, reveal: bool) -> str:
    """What to open in a browser: with a token, a login URL that sets the session cookie.

    The token is shown only on a terminal (``reveal``), as Jupyter shows its login URL:
    the user's own screen. Where standard error is captured (a service's log, docker
    logs), the URL names the variable instead, so the token never reaches a log.

    >>> from pydantic import SecretStr
    >>> from config.settings import load_settings
    >>> s = load_settings(api={"token": SecretStr("t0ken"), "auth_enabled": True})
    >>> login_line(s, "http://127.0.0.1:8600", reveal=True)
    'dashboard: open http://127.0.0.1:8600/login?token=t0ken in a browser (API clients: Authorization: Bearer $LEADSTREAM_API__TOKEN)'
    >>> login_line(s, "http://127.0.0.1:8600", reveal=False)
    'dashboard: open http://127.0.0.1:8600/login?token=$LEADSTREAM_API__TOKEN in a browser (API clients: Authorization: Bearer $LEADSTREAM_API__TOKEN)'
    """
    api = settings.api
    if not api.auth_enabled:
        return f"dashboard: {base}/  (authentication OFF)"
    if api.token is not None:
        token = quote(api.token.get_secret_value(), safe="") if reveal else "$LEADSTREAM_API__TOKEN"
        return (
            f"dashboard: open {base}/login?token={token} in a browser "
            "(API clients: Authorization: Bearer $LEADSTREAM_API__TOKEN)"
        )
    return f"dashboard: {base}/  (the browser asks for LEADSTREAM_API__USERNAME and its password)"
