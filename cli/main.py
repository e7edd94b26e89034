"""The `leadstream` command: a small registry of sub-commands.

Add a command group with ``app.add_typer(x_app, name="x")`` or a single
command with ``app.command("x")(x)``. Every command gets the one Settings
object through ``cli._context.settings_from(ctx)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

import cli.bench_models  # noqa: F401 -- registers the model benchmarks on bench_app
from cli._errors import EXIT_CONFIG, fail
from cli._logging import configure_logging
from cli.backfill import backfill
from cli.bench import bench_app
from cli.demo import demo
from cli.evaluate import evaluate
from cli.forget import forget
from cli.insights import insights_app
from cli.models import models_app
from cli.report import report
from cli.scheduler import scheduler
from cli.serve import serve
from cli.services import services_app
from cli.worker import generate, worker
from config.checks import describe_settings_error
from config.settings import load_settings

app = typer.Typer(
    name="leadstream",
    help="Streaming analytics for lead generation: ingest, score, learn, alert, report.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(services_app, name="services")
app.command("demo")(demo)
app.command("worker")(worker)
app.command("generate")(generate)
app.command("evaluate")(evaluate)
app.command("serve")(serve)
app.add_typer(bench_app, name="bench")
app.command("report")(report)
app.command("scheduler")(scheduler)
app.add_typer(insights_app, name="insights")
app.add_typer(models_app, name="models")
app.command("backfill")(backfill)
app.command("forget")(forget)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML settings file (same keys as the LEADSTREAM_* variables, sections as"
            " tables, e.g. \\[services] redis_port = 16380). Environment variables win over it.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Read the settings once and configure logging for whichever command runs."""
    try:
        settings = load_settings(config)
    except ValidationError as exc:
        fail("\n".join(describe_settings_error(exc, config)), EXIT_CONFIG)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    configure_logging(settings)
    ctx.obj = settings


def main() -> None:
    """Console-script entry point (`leadstream`)."""
    app()


if __name__ == "__main__":
    main()
