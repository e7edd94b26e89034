"""`leadstream backfill SOURCE`: train the stream's models from history and hand them over."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli._context import settings_from
from cli._errors import EXIT_CONFIG, EXIT_DATA, fail, require_services
from config.settings import STAGES, Settings

console = Console(stderr=True)

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

#: The default ClickHouse history: every created lead with its outcome, from the stored events.
_CH_HISTORY = """
SELECT l.*, toUInt8(ifNull(o.converted, 0)) AS converted, o.won_revenue AS won_revenue
FROM (SELECT * FROM {db}.leads FINAL WHERE event_type = 'lead_created') AS l
LEFT JOIN (
    SELECT lead_id, max(stage IN ({stages})) AS converted,
           maxIf(revenue, stage = 'won') AS won_revenue, min(occurred_at) AS first_at
    FROM {db}.conversions FINAL GROUP BY lead_id
) AS o ON o.lead_id = l.lead_id
WHERE o.converted = 1 OR l.occurred_at < now64(3) - INTERVAL {horizon} SECOND
"""


def backfill(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="a CSV, Parquet or Excel file, a PostgreSQL URL (postgresql://…, with --table or"
            " --query), or `clickhouse` (the configured ClickHouse: --query, or the stored"
            " leads and outcomes)",
        ),
    ],
    label: Annotated[
        str, typer.Option(help="the label column (0/1, true/false, yes/no)")
    ] = "converted",
    time_col: Annotated[
        str,
        typer.Option(
            "--time", help="the column rows are ordered by; rows without one are left out"
        ),
    ] = "occurred_at",
    revenue: Annotated[
        str | None, typer.Option(help="won-deal revenue column (teaches the revenue model)")
    ] = None,
    table: Annotated[str | None, typer.Option(help="PostgreSQL table (schema.table)")] = None,
    query: Annotated[str | None, typer.Option(help="SQL for PostgreSQL or ClickHouse")] = None,
    passes: Annotated[int, typer.Option(min=1, help="passes over the history")] = 3,
    validation: Annotated[
        float, typer.Option(help="share of the latest rows held out for validation")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="shuffling seed of the later passes")] = 0,
    publish: Annotated[
        bool, typer.Option(help="publish the trained models to the stream's model store")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train the champion and challengers on history (lead rows with outcomes), validate on the
    latest rows, record the validation metrics (model_metrics, scope backfill) and publish the
    models: the learner and every scorer continue from them."""
    from online_models.backfill import train
    from online_models.bundle import bundle_for

    settings = settings_from(ctx)
    if publish:  # before the training, not after it: the models go to Redis
        require_services(settings, redis=True)
    try:
        frame = load_source(settings, source, table, query)
    except (ValueError, OSError) as exc:
        fail(str(exc), EXIT_DATA)
    if source == "clickhouse" and query is None and revenue is None:
        revenue = "won_revenue"
    bundle = bundle_for(settings.models)
    rows = len(frame)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=as_json,
    ) as progress:  # fmt: skip
        total = max(0, round(rows * (1 - validation))) * passes + rows
        task = progress.add_task(f"training on {rows} rows", total=total)
        try:
            result = train(bundle, frame, label, time_col, revenue, passes, validation, seed,
                           lambda n: progress.advance(task, n))  # fmt: skip
        except ValueError as exc:
            progress.stop()
            fail(str(exc), EXIT_CONFIG)
    version = asyncio.run(_publish(settings, bundle)) if publish else None
    if publish:
        _store_metrics(settings, bundle, result)
    out: dict[str, Any] = {
        "rows": rows, "history_rows": result.history_rows,
        "validation_rows": result.validation_rows, "left_out_rows": result.left_out,
        "positives": result.positives,
        "revenues": result.revenues, "passes": passes, "champion": bundle.champion,
        "version": version, "seconds": round(result.seconds, 3),
        "validation": {
            name: {k: r[k] for k in ("auc", "logloss", "brier", "precision", "recall", "f1")}
            for name, r in result.validation.items()
        },
    }  # fmt: skip
    if as_json:
        print(json.dumps(out))
        return
    t = Table(title=f"validation on the latest {result.validation_rows} rows")
    for col in ("model", "AUC", "log loss", "Brier", "F1"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for name, r in out["validation"].items():
        t.add_row(
            name,
            *(("–" if r[k] is None else f"{r[k]:.4f}") for k in ("auc", "logloss", "brier", "f1")),
        )
    Console().print(t)
    console.print(
        f"published as model version {version}" if version else "not published (--no-publish)"
    )


def load_source(
    settings: Settings, source: str, table: str | None, query: str | None, clickhouse: Any = None
) -> Any:
    """The history as a DataFrame, from a file, PostgreSQL (psql) or ClickHouse.

    ``clickhouse`` is an open client to use instead of connecting to the configured one.
    """
    import pandas as pd

    if source.startswith(("postgresql://", "postgres://")):
        return pd.read_csv(io.BytesIO(_psql_copy(source, table, query)))
    if source == "clickhouse":
        return _clickhouse(settings, query, clickhouse)
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{source} is not a file, a postgresql:// URL or `clickhouse`")
    from online_models.tables import read_table

    return read_table(path)


def _psql_copy(url: str, table: str | None, query: str | None) -> bytes:
    """``COPY (…) TO STDOUT`` through the psql client (no Python driver needed)."""
    if (table is None) == (query is None):
        raise ValueError("a PostgreSQL source needs exactly one of --table or --query")
    if table is not None and not _TABLE.match(table):
        raise ValueError(f"--table {table!r} is not a plain (schema.)table name")
    select = query if query is not None else f"SELECT * FROM {table}"  # noqa: S608 - checked name
    sql = f"COPY ({select.strip().rstrip(';')}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    psql = shutil.which("psql")
    if psql is None:
        raise ValueError("psql is not installed: install the PostgreSQL client (postgresql-client)")
    done = subprocess.run(  # noqa: S603 - fixed program, the URL and SQL as arguments
        [psql, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ValueError(f"psql failed: {done.stderr.decode(errors='replace').strip()[:500]}")
    return done.stdout


def _clickhouse(settings: Settings, query: str | None, client: Any) -> Any:
    from sinks.clickhouse import connect, migrate

    own = client is None
    client = connect(settings.clickhouse) if own else client
    try:
        db = settings.clickhouse.database
        migrate(client, db)
        m = settings.models
        target = STAGES.index(m.target_stage)
        stages = ", ".join(f"'{s}'" for s in STAGES[target:] if s != "lost")
        sql = query or _CH_HISTORY.format(db=db, stages=stages, horizon=int(m.horizon_days * 86400))
        return client.query_df(sql)
    finally:
        if own:
            client.close()


async def _publish(settings: Settings, bundle: Any) -> int:
    import redis.asyncio as aioredis

    from online_models.bundle import ModelStore

    client = aioredis.from_url(settings.redis.url)
    try:
        return await ModelStore(client, settings.redis.key_prefix).publish(bundle)
    finally:
        await client.aclose()


def _store_metrics(settings: Settings, bundle: Any, result: Any) -> None:
    """The validation metrics in ClickHouse (advisory: a busy chDB only warns)."""
    from cli._records import insert_advisory
    from online_models.backfill import validation_rows

    insert_advisory(settings, "model_metrics", validation_rows(bundle, result, datetime.now(UTC)),
                    console)  # fmt: skip
