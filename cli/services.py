"""`leadstream services up|down|status`: the local broker, Redis, Prometheus and Alertmanager."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli import _procs, _workers
from cli._context import settings_from
from cli.exceptions import ServiceError

services_app = typer.Typer(
    name="services",
    help=(
        "Local services for development and tests: the Tansu Kafka-protocol broker, Redis,"
        " Prometheus and Alertmanager, all on 127.0.0.1. Ports come from the settings"
        " (LEADSTREAM_SERVICES__BROKER_PORT, __REDIS_PORT, __PROMETHEUS_PORT,"
        " __ALERTMANAGER_PORT); pid files, logs and data live under LEADSTREAM_SERVICES__RUN_DIR"
        " (default var/run), one folder per service."
    ),
    no_args_is_help=True,
)

_out = Console()
_err = Console(stderr=True)

Only = Annotated[
    str | None,
    typer.Option(
        "--only",
        help="Comma-separated subset of: broker, redis, prometheus, alertmanager (default:"
        " all); for `down`, also `workers` (the ones `up --workers N` started).",
        show_default=False,
    ),
]


@services_app.command("up")
def up(
    ctx: typer.Context,
    only: Only = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each service to become ready.", min=0.1)
    ] = 30.0,
    webhook_port: Annotated[
        int,
        typer.Option(
            help="Port of the loopback webhook (http://127.0.0.1:PORT/alerts) Alertmanager"
            " notifies; used when Alertmanager starts.",
            min=1,
            max=65535,
        ),
    ] = _procs.DEFAULT_WEBHOOK_PORT,
    workers: Annotated[
        int,
        typer.Option(
            help="Also start N stream workers (`worker --role stream`) and one worker that"
            " learns and owns the store (`--role learner,sink`), each with its own /metrics"
            " port from LEADSTREAM_METRICS__PORT on; 0 starts none.",
            min=0,
        ),
    ] = 0,
) -> None:
    """Start the services that are not running yet and wait until each one answers.

    Running services are left alone, so `up` can be repeated. The processes
    outlive this command; stop them with `leadstream services down`. Fails
    with the setting to change when a port is taken by another program, and
    with the install command when a binary is missing.
    """
    settings = settings_from(ctx)
    try:
        handles = _procs.ensure_services(
            settings, only=_split(only), timeout=timeout, webhook_port=webhook_port
        )
        # The workers read the same settings: the environment, and `--config` if given.
        config = ctx.find_root().params.get("config")
        started = _workers.start_workers(settings, workers, config=config) if workers else []
    except (ServiceError, ValueError) as exc:
        _fail(exc)
    table = _table("result")
    for h in handles.values():
        table.add_row(h.name, str(h.pid), h.url, "started" if h.started else "already running")
    for w in started:
        table.add_row(f"{w.name} ({w.roles})", str(w.pid), w.url,
                      "started" if w.started else "already running")  # fmt: skip
    _out.print(table)
    _out.print(f"run directory: {settings.services.run_dir.resolve()}")


@services_app.command("down")
def down(
    ctx: typer.Context,
    only: Only = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL.", min=0.1)
    ] = 10.0,
) -> None:
    """Stop the services started by `up` (SIGTERM, then SIGKILL) and remove their pid files.

    Only processes recorded in our pid files are signalled; a program that
    merely uses one of the ports is never touched.
    """
    settings = settings_from(ctx)
    try:
        # Workers first: each finishes and commits its batch while the broker still runs.
        names = _split(only)
        stopped = _workers.stop_workers(settings) if not names or "workers" in names else {}
        if not names or set(names) - {"workers"}:
            services = [n for n in names or () if n != "workers"]
            stopped |= _procs.stop_services(settings, only=services, timeout=timeout)
    except (ServiceError, ValueError) as exc:
        _fail(exc)
    for name, pid in stopped.items():
        _out.print(f"{name:<13} " + (f"stopped (pid {pid})" if pid else "not running"))


@services_app.command("status")
def status(ctx: typer.Context, only: Only = None) -> None:
    """Show each service's pid, address and state; exit 1 unless all are running.

    States: running (ours and answering), unhealthy (ours, alive, not
    answering), stopped, foreign (the port is held by a program we did not start).
    """
    settings = settings_from(ctx)
    try:
        statuses = _procs.service_statuses(settings, only=_split(only))
    except ValueError as exc:
        _fail(exc)
    styles = {"running": "green", "unhealthy": "yellow", "stopped": "red", "foreign": "red"}
    table = _table("state", "detail")
    for s in statuses:
        state = f"[{styles[s.state]}]{s.state}[/]"
        table.add_row(s.name, str(s.pid or "-"), s.address, state, escape(s.detail))
    workers = _workers.worker_statuses(settings)
    for name, pid, port, answering in workers:
        state = (
            "[green]running[/]"
            if answering
            else "[red]stopped[/]"
            if pid is None
            else "[yellow]unhealthy[/]"
        )
        table.add_row(name, str(pid or "-"), f"{_procs.HOST}:{port}", state, "")
    _out.print(table)
    if not all(s.ok for s in statuses) or not all(w[3] for w in workers):
        raise typer.Exit(1)


def _table(*extra: str) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("service", "pid", "address", *extra):
        table.add_column(column, overflow="fold")
    return table


def _split(only: str | None) -> list[str] | None:
    return [part for part in only.split(",") if part.strip()] if only else None


def _fail(exc: Exception) -> NoReturn:
    _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
