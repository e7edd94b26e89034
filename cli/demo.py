"""`leadstream demo`: the embedded end-to-end run.

A Tansu broker and a Redis server run as children of this process, ClickHouse
runs in-process through chDB, and the worker, generator and sink share one
event loop. Nothing is left running afterwards.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli._context import settings_from
from cli._logging import configure_logging
from config.settings import Settings

console = Console()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pii_key(folder: Path) -> str:
    """A random PII key kept in the demo folder (0600), the same across demo runs."""
    path = folder / "secrets" / "pii_hash_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def demo(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="leads to simulate")] = 12000,
    days: Annotated[int, typer.Option(help="simulated days of traffic")] = 150,
    horizon_days: Annotated[
        float, typer.Option(help="a lead with no SQL within this many days is a negative")
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
    bad_fraction: Annotated[float, typer.Option(help="share of malformed events")] = 0.01,
    duplicate_fraction: Annotated[float, typer.Option(help="share of events re-sent")] = 0.01,
    rate: Annotated[
        float,
        typer.Option(
            help="events per second (0: as fast as possible). Paced, the 150 simulated days "
            "pass in ~40 s, so outcomes arrive while leads are still being scored"
        ),
    ] = 1500.0,
    folder: Annotated[Path, typer.Option(help="where the demo keeps its data")] = Path("var/demo"),
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 110.0,
    dashboard: Annotated[
        bool, typer.Option(help="serve the live dashboard while the demo runs")
    ] = True,
    serve_for: Annotated[
        float, typer.Option(help="keep the dashboard open this many seconds after the run")
    ] = 0.0,
    journeys: Annotated[
        bool, typer.Option(help="touch leads through several channels (for attribution)")
    ] = False,
) -> None:
    """Run leadstream end to end on generated events, embedded: no servers to install.

    Starts a Kafka-protocol broker and Redis as child processes, ClickHouse in-process
    (chDB), generates lead traffic, scores every lead, learns from conversions, and
    prints a summary. Everything it started is stopped before it returns.
    """
    from cli._procs import start_broker, start_redis
    from reporting.summary import run_summary
    from sinks.clickhouse import connect
    from streaming import synthetic
    from streaming.app import topic_layout
    from streaming.runtime import Runtime, request_stop
    from streaming.topic_guard import create_topics

    base = settings_from(ctx)
    folder = folder.resolve()
    chdb = folder / "chdb"
    log_file = folder / "demo.log"
    shutil.rmtree(chdb, ignore_errors=True)  # a fresh store each run keeps the summary honest
    started = time.perf_counter()
    broker = start_broker(free_port(), folder / "run", detach=False)
    try:
        with broker, start_redis(free_port(), folder / "run", detach=False) as redis:
            metrics_port = free_port()
            settings = base.model_copy(
                update={
                    "kafka": base.kafka.model_copy(update={
                        "bootstrap": broker.url, "session_timeout_s": 2.0,
                        "heartbeat_interval_s": 0.5, "app_id": "leadstream-demo"}),
                    "redis": base.redis.model_copy(update={"url": redis.url, "key_prefix": "demo"}),
                    "clickhouse": base.clickhouse.model_copy(update={"chdb_path": chdb, "dsn": None}),
                    "metrics": base.metrics.model_copy(update={"port": metrics_port}),
                    "models": base.models.model_copy(update={
                        "publish_every_s": 0.5, "reload_every_s": 0.25, "horizon_days": horizon_days}),
                    "pii_hash_key": SecretStr(_pii_key(folder)),
                }
            )  # fmt: skip
            # The terminal keeps the progress and the summary; every log line goes to a file.
            log_file.unlink(missing_ok=True)
            configure_logging(settings, log_file)
            # Faust creates only the last level of its folder; a fresh checkout has no var/.
            settings.kafka.data_dir.mkdir(parents=True, exist_ok=True)
            client = connect(settings.clickhouse)
            runtime = Runtime(settings, clickhouse=client)
            # Before Faust starts: it would have the broker create them with its default partitions.
            asyncio.run(create_topics(broker.url, topic_layout(settings), 1))
            cfg = synthetic.GeneratorConfig(
                seed=seed, leads=leads, days=days, bad_fraction=bad_fraction,
                duplicate_fraction=duplicate_fraction, journeys=journeys,
            )  # fmt: skip
            outcome: dict[str, Any] = {}

            @runtime.app.task
            async def drive() -> None:
                # Faust's worker (mode) replaced the root log handlers with its own on
                # standard error when it started; its lines go to the log file too.
                configure_logging(settings, log_file)
                try:
                    outcome.update(await _drive(runtime, cfg, rate, timeout))
                finally:
                    request_stop()

            console.print(
                f"[bold]leadstream demo[/]: broker {broker.address}, Redis {redis.address}, "
                f"chDB {chdb}, metrics http://127.0.0.1:{metrics_port}/metrics\n"
                f"log lines (JSON) go to {log_file}"
            )
            from api.server import demo_dashboard

            web = demo_dashboard(settings, client, free_port()) if dashboard else None
            if web is not None:
                console.print(f"[bold]dashboard[/] (live while events flow): {web.url}/")
            try:
                runtime.run(settings.log_level)
                summary = run_summary(client, settings.clickhouse.database)
                _print_summary(summary, outcome, settings, time.perf_counter() - started)
                console.print(f"Log lines (JSON): {log_file}")
                if web is not None and serve_for > 0:
                    console.print(
                        f"[bold]Dashboard[/]: {web.url}/ (open {serve_for:.0f} s more; "
                        "Ctrl-C stops it)"
                    )
                    _wait(serve_for)
                elif web is not None:
                    console.print(
                        f"Dashboard: {web.url}/ closed with the run; `leadstream demo "
                        "--serve-for 600` keeps it open after the summary"
                    )
            finally:
                if web is not None:
                    web.stop()
    finally:
        broker.stop()
    console.print("Nothing is left running.")
    if not outcome.get("complete"):
        console.print(f"[red]the run did not finish within {timeout:.0f} s[/]")
        raise typer.Exit(1)


def _wait(seconds: float) -> None:
    """Sleep, or stop early on Ctrl-C (the dashboard is then closed as after the wait)."""
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        console.print("stopping")


async def _drive(runtime: Any, cfg: Any, rate: float, timeout: float) -> dict[str, Any]:
    """Send the generated events, then wait until the worker has handled all of them."""
    from streaming import synthetic
    from streaming.producer import produce

    registry = runtime.registry
    settings = runtime.settings
    progress = Progress(
        TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip

    def handled() -> float:
        total = 0.0
        for metric in ("leadstream_events_in_total", "leadstream_events_rejected_total",
                       "leadstream_events_duplicate_total"):  # fmt: skip
            for family in registry.collect():
                for sample in family.samples:
                    if sample.name == metric:
                        total += sample.value
        return total

    deadline = time.perf_counter() + timeout
    with progress:
        # The total is known once the generator is done; until then the bars pulse.
        sending = progress.add_task("sending events", total=None)
        processing = progress.add_task("processing", total=None)

        async def watch() -> None:
            while True:
                progress.update(processing, completed=handled())
                await asyncio.sleep(0.25)

        watcher = asyncio.create_task(watch())
        try:
            sent = await produce(
                synthetic.generate(cfg), settings.kafka.bootstrap, settings.kafka.topics,
                rate=rate or None, on_sent=lambda n: progress.advance(sending, n),
            )  # fmt: skip
            total = sum(sent.values())
            progress.update(sending, total=total, completed=total)
            progress.update(processing, total=total)
            while handled() < total and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
            # Let the last labels reach the learner and the model be published.
            await asyncio.sleep(2 * settings.models.publish_every_s + 1.0)
        finally:
            watcher.cancel()
        progress.update(processing, completed=handled())
    return {"sent": dict(sent), "complete": handled() >= total}


def auc_reading(area: float) -> str:
    """ROC AUC in plain words: how often a converter is ranked above a non-converter.

    >>> auc_reading(0.5), auc_reading(0.903)
    ('as good as chance', 'a converter outranks a non-converter 90% of the time')
    """
    if math.isnan(area):
        return "not known yet (no converter and non-converter to compare)"
    if abs(area - 0.5) < 0.02:
        return "as good as chance"
    return f"a converter outranks a non-converter {area:.0%} of the time"


def _auc_reading(summary: Any) -> str:
    published = "n/a" if math.isnan(summary.auc) else f"{summary.auc:.3f}"
    lines = [
        f"Scores published at arrival, ranked against outcomes: ROC AUC [bold]{published}[/] over"
        f" {summary.examples:,} labelled leads ({auc_reading(summary.auc)}; it includes the"
        " cold-start scores given before the model had learned anything)"
    ]
    if summary.champion:
        lines.append(
            f"The champion model ({summary.champion}), scored on each labelled lead before"
            f" learning it: ROC AUC [bold]{summary.champion_auc:.3f}[/] over its last"
            f" {summary.champion_examples:,} ({auc_reading(summary.champion_auc)}); this is"
            " what `leadstream models list` shows. 0.5 is chance, 1.0 is a perfect ranking."
        )
    return "\n".join(lines)


def _print_summary(
    summary: Any, outcome: dict[str, Any], settings: Settings, seconds: float
) -> None:
    t = Table(title="Events processed", show_lines=False)
    for col in ("kind", "event type", "events"):
        t.add_column(col, justify="right" if col == "events" else "left")
    for kind, etype, n in summary.events:
        t.add_row(kind, etype, f"{n:,}")
    console.print(t)
    r = Table(title="Events rejected (dead-letter topic)")
    for col in ("topic", "reason", "events", "example"):
        r.add_column(col)
    for topic, code, n, example in summary.rejected:
        r.add_row(topic, code, f"{n:,}", example[:70])
    console.print(r)
    c = Table(title="By channel")
    for col in ("channel", "leads", "spend", "cost per lead", "won", "revenue"):
        c.add_column(col, justify="left" if col == "channel" else "right")
    for ch, n, spend, cpl, won, revenue in summary.channels:
        c.add_row(ch, f"{n:,}", f"{spend:,.0f}", f"{cpl:,.2f}", f"{won:,}", f"{revenue:,.0f}")
    console.print(c)
    bands = ", ".join(f"{b} {n:,}" for b, n in summary.bands.items())
    topics = settings.kafka.topics
    console.print(
        f"Leads scored: [bold]{summary.scored:,}[/] ({bands}); model version {summary.model_version}\n"
        f"Conversions: {summary.total('conversion'):,} stage changes; labelled examples "
        f"{summary.examples:,} ({summary.positives:,} positive)\n"
        f"{_auc_reading(summary)}\n"
        f"Data: ClickHouse (chDB) in {settings.clickhouse.chdb_path}, database "
        f"{settings.clickhouse.database}; topics {', '.join(topics.raw())}, {topics.scored}, "
        f"{topics.training}, {topics.deadletter} (the embedded broker is memory-only and has stopped)\n"
        f"Finished in {seconds:.1f} s."
    )
