"""`leadstream worker` and `leadstream generate`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, cast, get_args

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli._context import settings_from
from cli._errors import EXIT_CONFIG, fail, refuse_placeholder_secrets, require_services
from cli._logging import configure_logging
from streaming import synthetic

console = Console(stderr=True)


def worker(
    ctx: typer.Context,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="what this process runs: stream (ingest, score, label; any number of"
            " processes), learner (one), sink (the ClickHouse writes; with chDB the one"
            " process that owns the store and answers the others' queries), or all"
            " (default). Repeat or comma-separate: --role learner,sink",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the Faust worker against the configured Kafka, Redis and ClickHouse (production mode).

    Stops cleanly on SIGTERM or Ctrl-C: the current batch is finished, offsets committed.
    Several workers share the load: start more with --role stream (same settings, same
    group); see the README's "Scaling out".
    """
    from streaming.app import topic_layout
    from streaming.roles import parse_roles
    from streaming.runtime import Runtime
    from streaming.topic_guard import create_topics

    try:
        roles = parse_roles(role or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from exc
    settings = settings_from(ctx)
    try:
        settings.require_pii_key()
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
    refuse_placeholder_secrets(settings)
    require_services(settings, broker=True, redis=True)
    # Faust creates only the last level of its folder; a fresh checkout has no var/.
    settings.kafka.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        runtime = Runtime(settings, roles=roles)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)

    async def own_logging() -> None:
        # Faust's worker (mode) replaced the root log handlers with its own plain-text one
        # when it started: its lines (faust, aiokafka) get ours again, JSON like the rest.
        configure_logging(settings)

    runtime.app.task(own_logging)
    # Before Faust starts: it would have the broker create them with its default partitions.
    asyncio.run(
        create_topics(
            settings.kafka.bootstrap, topic_layout(settings), settings.kafka.replication_factor
        )
    )
    runtime.run(settings.log_level)


def generate(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="about how many leads to simulate")] = 20000,
    days: Annotated[int, typer.Option(help="simulated days")] = 120,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same events)")] = 7,
    rate: Annotated[float, typer.Option(help="events per second; 0 = as fast as possible")] = 0,
    bad_fraction: Annotated[float, typer.Option(help="share of malformed events added")] = 0.0,
    duplicate_fraction: Annotated[float, typer.Option(help="share of events sent twice")] = 0.0,
    drift_at: Annotated[
        float | None, typer.Option(help="concept drift after this share of leads")
    ] = None,
    anomaly: Annotated[
        list[str] | None,
        typer.Option(
            # "\\[" keeps Rich (Typer's help renderer) from reading "[/CAMPAIGN]" as markup.
            help="inject an anomaly, KIND:CHANNEL\\[/CAMPAIGN]:START_DAY:DAYS:FACTOR, e.g."
            " volume_drop:paid_search:30:2:0.1 (repeatable; kinds: volume_spike, volume_drop,"
            " conversion_drop, conversion_surge, cpl_spike)",
            show_default=False,
        ),
    ] = None,
    jsonl: Annotated[
        Path | None, typer.Option(help="write events to this JSONL file instead of Kafka")
    ] = None,
    csv_dir: Annotated[
        Path | None, typer.Option(help="write one CSV per event kind into this folder")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="write each lead's hidden propensity to this CSV")
    ] = None,
    journeys: Annotated[
        bool,
        typer.Option(
            help="touch leads through several channels (touchpoints carry their own channel"
            " and campaign); with --truth, the channels' true shares go to TRUTH.channels.json"
        ),
    ] = False,
) -> None:
    """Generate realistic synthetic lead traffic into Kafka (or files), deterministic by seed."""
    from streaming.producer import produce

    settings = settings_from(ctx)
    try:
        cfg = synthetic.GeneratorConfig(
            seed=seed, leads=leads, days=days, bad_fraction=bad_fraction,
            duplicate_fraction=duplicate_fraction, drift_at=drift_at,
            anomalies=tuple(parse_anomaly(a) for a in anomaly or ()), journeys=journeys,
        )  # fmt: skip
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    channels = synthetic.ChannelTruth() if journeys and truth is not None else None
    if jsonl is None and csv_dir is None:
        require_services(settings, broker=True)
    with synthetic.truth_writer(truth) as record_truth:
        events = _then(synthetic.generate(cfg, truth=record_truth, channel_truth=channels),
                       lambda: channels.write(truth.with_suffix(".channels.json"))
                       if channels is not None and truth is not None else None)  # fmt: skip
        if jsonl is not None:
            synthetic.write_jsonl(events, jsonl)
            console.print(f"wrote {jsonl}")
            return
        if csv_dir is not None:
            synthetic.write_csv(events, csv_dir)
            console.print(f"wrote CSV files to {csv_dir}")
            return
        with _progress() as progress:
            task = progress.add_task("sending events", total=None)
            sent = asyncio.run(
                produce(
                    events,
                    settings.kafka.bootstrap,
                    settings.kafka.topics,
                    rate=rate or None,
                    on_sent=lambda n: progress.advance(task, n),
                )
            )
    console.print(
        f"sent {sum(sent.values())} events: "
        + ", ".join(f"{k} {v}" for k, v in sorted(sent.items()))
    )


def _then(events: Iterator[synthetic.Emitted], done: Callable[[], None]) -> Iterator[synthetic.Emitted]:
    """``events``, then ``done()`` once they are all consumed."""
    yield from events
    done()


def parse_anomaly(spec: str) -> synthetic.Anomaly:
    """An anomaly from ``KIND:CHANNEL[/CAMPAIGN]:START_DAY:DAYS:FACTOR``.

    >>> parse_anomaly("volume_drop:paid_search/se-google-01:30:2:0.1")
    Anomaly(kind='volume_drop', channel='paid_search', campaign_id='se-google-01', start_day=30, days=2, factor=0.1)
    >>> parse_anomaly("volume_drop:paid_search")
    Traceback (most recent call last):
    ValueError: anomaly 'volume_drop:paid_search' is not KIND:CHANNEL[/CAMPAIGN]:START_DAY:DAYS:FACTOR, e.g. volume_drop:paid_search:30:2:0.1
    """
    parts = spec.split(":")
    kinds = get_args(synthetic.AnomalyKind)
    try:
        kind, target, start, days, factor = parts
        channel, _, campaign = target.partition("/")
        if kind not in kinds:
            raise ValueError(f"anomaly kind {kind!r} is not one of {', '.join(kinds)}")
        return synthetic.Anomaly(
            cast(synthetic.AnomalyKind, kind), channel, campaign or None, int(start), int(days),
            float(factor),
        )  # fmt: skip
    except ValueError as exc:
        if "anomaly kind" in str(exc):
            raise
        raise ValueError(
            f"anomaly {spec!r} is not KIND:CHANNEL[/CAMPAIGN]:START_DAY:DAYS:FACTOR,"
            " e.g. volume_drop:paid_search:30:2:0.1"
        ) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip
