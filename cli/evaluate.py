"""`leadstream evaluate`: model quality on a labelled file, as the stream would see it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cli._errors import EXIT_CONFIG, EXIT_DATA, fail

console = Console(stderr=True)


def _progress() -> Progress:
    """Stages with bars and times, on standard error (standard output stays the JSON)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip


def evaluate(
    data: Annotated[
        Path,
        typer.Argument(
            help="CSV (comma, semicolon, tab or pipe; UTF-8 or Windows encoding; may be "
            ".gz), Parquet file or Excel workbook with one labelled row per lead"
        ),
    ],
    label: Annotated[
        str,
        typer.Option(
            help="the label column (0/1, true/false, yes/no…); rows without one are left out"
        ),
    ],
    time: Annotated[
        str,
        typer.Option(
            "--time", help="the column rows are ordered by; rows without one are left out"
        ),
    ],
    id_columns: Annotated[
        list[str] | None, typer.Option("--id", help="id columns to leave out of the features")
    ] = None,
    holdout: Annotated[
        float, typer.Option(help="share of the latest rows scored test-then-train")
    ] = 0.5,
    passes: Annotated[int, typer.Option(help="backfill passes over the history (sgd)")] = 12,
    threshold: Annotated[
        float | None, typer.Option(help="positive at or above; default: best F1 on the history")
    ] = None,
    folds: Annotated[int, typer.Option(help="also k-fold CV on the history when above 1")] = 0,
    sensitivity: Annotated[
        bool, typer.Option(help="also how AUC moves with each column removed or shuffled")
    ] = False,
    group: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=COL,COL: also remove or shuffle these columns together (repeatable; "
            "implies --sensitivity)"
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="newton: the stream's `newton` kind, logistic regression solved on the history, "
            "then online Newton steps; sgd: the default `logistic` kind, backfilled by SGD passes"
        ),
    ] = "newton",
    positive: Annotated[
        str | None,
        typer.Option(
            help="the label value that counts as a conversion (others are 0), or a threshold"
            " for a numeric column: '>=N' or '>N'"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Order rows by time, train on the history as a backfill would, then score the rest
    test-then-train as the live stream does. Columns other than the label, time and id
    columns are features: numeric ones as numbers, the rest as categories; missing values
    are allowed."""
    from online_models.evaluation import evaluate as run
    from online_models.tables import read_table

    if not data.is_file():
        raise typer.BadParameter(f"{data} does not exist", param_hint="DATA")
    groups: dict[str, list[str]] = {}
    for spec in group or ():
        name, eq, columns = spec.partition("=")
        if not eq or not name.strip() or not columns.strip():
            raise typer.BadParameter(
                f"{spec!r} is not NAME=COL,COL (e.g. engagement=email_opens,email_clicks)",
                param_hint="--group",
            )
        groups[name.strip()] = [c.strip() for c in columns.split(",") if c.strip()]
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        reading = progress.add_task(f"reading {data.name}", total=None)
        try:
            frame = read_table(data)
        except ValueError as exc:
            progress.stop()
            fail(str(exc), EXIT_DATA)
        progress.update(reading, total=1, completed=1)
        try:
            result = run(
                frame, label, time, id_columns or (), holdout, passes, threshold, folds,
                sensitivity, model=model, groups=groups, positive=positive, progress=report,
            )  # fmt: skip
        except ValueError as exc:
            progress.stop()
            fail(str(exc), EXIT_CONFIG)
    out = result.as_dict()
    if as_json:
        print(json.dumps(out, allow_nan=False))
        return
    table = Table(title=f"{data.name}: {out['history_rows']} history rows, {out['rows']} scored")
    table.add_column("metric")
    table.add_column("value", justify="right")
    effects = out.pop("sensitivity", None)
    for key, value in out.items():
        shown = (
            "–" if value is None or value == []
            else f"{value:.4f}" if isinstance(value, float)
            else ", ".join(value) if isinstance(value, list)
            else str(value)
        )  # fmt: skip
        table.add_row(key, shown)
    Console().print(table)
    if effects:
        t = Table(title="sensitivity: AUC loss per column or group")
        for col in ("column", "removed", "shuffled"):
            t.add_column(col, justify="left" if col == "column" else "right")
        for e in effects:
            t.add_row(
                f"{e['column']} ({', '.join(e['columns'])})" if "columns" in e else e["column"],
                f"{e['auc_loss_without']:+.4f}",
                f"{e['auc_loss_shuffled']:+.4f}",
            )
        Console().print(t)
