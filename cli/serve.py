"""`leadstream serve`: the dashboard and JSON API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli._context import settings_from

console = Console(stderr=True)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="listen address (default: api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: api.port)")] = None,
) -> None:
    """Serve the dashboard and the JSON API (OpenAPI at /openapi.json) until interrupted.

    Queries use LEADSTREAM_API__CLICKHOUSE_DSN (a read-only user) when set, else the
    ClickHouse settings; answers are cached in Redis. Authentication is required unless
    LEADSTREAM_API__AUTH_ENABLED=false: set LEADSTREAM_API__TOKEN or a user and password.
    """
    import uvicorn

    from api.server import build_app, connect_readonly
    from sinks.exceptions import SinkError

    settings = settings_from(ctx)
    try:
        client = connect_readonly(settings)
        built = build_app(settings, client)
    except (ValueError, SinkError) as exc:
        console.print(f"[bold red]cannot serve:[/] {exc}")
        raise typer.Exit(2) from exc
    bind_host = host or settings.api.host
    bind_port = settings.api.port if port is None else port
    auth = "token/password required" if settings.api.auth_enabled else "authentication OFF"
    console.print(f"dashboard: http://{bind_host}:{bind_port}/  ({auth})")
    try:
        uvicorn.run(
            built.app, host=bind_host, port=bind_port, log_level="warning", access_log=False
        )
    finally:
        client.close()
