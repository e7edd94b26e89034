"""`leadstream bench`: benchmarks whose results are written as JSON under bench/results/."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli._context import settings_from

bench_app = typer.Typer(
    help="Benchmarks; each writes JSON under bench/results/.", no_args_is_help=True
)
console = Console()

#: Targets of the batch-first hot path (issue 14), all against yardsticks of the same run.
TARGET_RATIO_BARE = 0.9  # worker / bare aiokafka loop
TARGET_RATIO_CEILING = 0.15  # worker / raw send_batch relay
TARGET_P99_MS = {2000.0: 100.0, 5000.0: 250.0}  # paced rate -> p99 event -> scored
TARGET_PIPELINE_RATIO = 0.65  # pipeline µs per event / bare loop µs per event


@bench_app.command("scoring")
def scoring(
    ctx: typer.Context,
    events: Annotated[
        int, typer.Option(help="lead events in the throughput (backlog) phase")
    ] = 60_000,
    rate: Annotated[
        list[float] | None,
        typer.Option(help="events per second of a paced latency phase (repeat for several)"),
    ] = None,
    latency_seconds: Annotated[float, typer.Option(help="length of each paced phase")] = 10.0,
    profile: Annotated[
        bool, typer.Option(help="profile the worker and save the top functions")
    ] = False,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """The worker against a bare aiokafka loop and the broker's ceiling, same broker, same run.

    Three phases on one embedded broker: the worker (`leadstream worker` as its own
    process: a backlog, then paced phases for latency), the bare loop (decode, features,
    explained score, one `send` per record), and the ceiling (raw records relayed with one
    record batch per partition). Then the pipeline's own cost per stage, without a consumer.
    Reports events per second, p50/p99 latency from event to scored, and the ratios.
    """
    from cli._bench_scoring import (
        bench_settings,
        faust_floor,
        machine,
        run_bare_phases,
        run_ceiling,
        run_worker_phases,
        stage_costs,
        top_functions,
    )
    from cli._procs import start_broker, start_redis
    from cli.demo import free_port

    rates = rate or [2000.0, 5000.0]
    base = settings_from(ctx)
    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with (
            start_broker(free_port(), work / "run", detach=False) as broker,
            start_redis(free_port(), work / "run", detach=False) as redis,
        ):
            settings = bench_settings(base, broker.url, redis.url, work / "chdb")
            prof = work / "worker.prof" if profile else None
            w_tp, w_lat = run_worker_phases(
                settings, events, rates, latency_seconds, prof, lambda m: console.print(m)
            )
            top = top_functions(prof) if prof else ""
            console.print("bare loop: the same phases")
            b_tp, b_lat = run_bare_phases(settings, events, rates[0], latency_seconds)
            console.print("ceiling: raw records relayed with send_batch")
            ceiling = run_ceiling(settings, events)
            console.print("Faust with an empty agent; then the pipeline's stages without Faust")
            floor = faust_floor(settings, events)
            stages = stage_costs(settings, min(events, 20000))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = w_tp.eps / b_tp.eps if b_tp.eps else 0.0
    to_ceiling = w_tp.eps / ceiling.eps if ceiling.eps else 0.0
    bare_us = 1e6 / b_tp.eps if b_tp.eps else 0.0
    pipeline_ratio = stages["whole_pipeline"] / bare_us if bare_us else 0.0
    latency = {f"{r:.0f}_per_s": p.summary() for r, p in zip(rates, w_lat, strict=True)}
    p99_met = all(
        p.summary().get("latency_p99_ms", 1e9) <= TARGET_P99_MS[r]
        for r, p in zip(rates, w_lat, strict=True)
        if r in TARGET_P99_MS
    )
    result = {
        "benchmark": "scoring",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        # "latency" is the first paced rate's (2,000/s), the shape earlier results have.
        "worker": {"throughput": w_tp.summary(), "latency": w_lat[0].summary(),
                   "latency_by_rate": latency},
        "bare_loop": {"throughput": b_tp.summary(), "latency": b_lat.summary()},
        "ceiling_send_batch_relay": {"throughput": ceiling.summary()},
        "ratio_worker_to_bare": round(ratio, 3),
        "ratio_worker_to_ceiling": round(to_ceiling, 3),
        "faust_empty_agent_events_per_s": round(floor) if floor is not None else None,
        "pipeline_us_per_event_without_faust": stages,
        "bare_loop_us_per_event": round(bare_us, 1),
        "ratio_pipeline_to_bare_per_event": round(pipeline_ratio, 3),
        "targets": {
            "ratio_to_bare": TARGET_RATIO_BARE, "ratio_to_ceiling": TARGET_RATIO_CEILING,
            "p99_ms": {f"{r:.0f}_per_s": v for r, v in TARGET_P99_MS.items()},
            "pipeline_ratio": TARGET_PIPELINE_RATIO,
            "met": {
                "ratio_to_bare": ratio >= TARGET_RATIO_BARE,
                "ratio_to_ceiling": to_ceiling >= TARGET_RATIO_CEILING,
                "p99": p99_met,
                "pipeline_ratio": pipeline_ratio <= TARGET_PIPELINE_RATIO,
            },
        },
        "seconds_total": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    path = out / "scoring.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if profile:
        (out / "scoring-profile.txt").write_text(top)
    _print(result)
    console.print(f"results: {path}")


def _save(out: Path, name: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))
    console.print(f"results: {path}")


@bench_app.command("anomalies")
def anomalies(
    leads: Annotated[int, typer.Option(help="leads in each generated stream")] = 200_000,
    days: Annotated[int, typer.Option(help="simulated days (daily windows)")] = 120,
    seed: Annotated[int, typer.Option(help="generator seed")] = 7,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Anomaly detection on generated traffic with injected anomalies, graded against the truth.

    Precision, recall and delay with anomalies, false alarms without, River detectors on the
    same series, throughput on its own Redis. No broker: simulated time.
    """
    from cli._bench_anomalies import run

    run(leads, days, seed, out, console)


@bench_app.command("api")
def api_views(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="events to load into chDB")] = 10_000_000,
    repeat: Annotated[int, typer.Option(help="calls per view (uncached)")] = 20,
    days: Annotated[int, typer.Option(help="days the events span")] = 150,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Every API view's p95 uncached and cached, and the dashboard's time to charts in Chromium.

    Loads events shaped like the generator's into chDB in a temporary folder (INSERT …
    SELECT from numbers()), starts its own Redis, serves the app twice (cache off, on).
    """
    from cli._bench_api import print_results, run_api_benchmark

    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-api-"))
    try:
        result = run_api_benchmark(settings_from(ctx), events, repeat, days, work, console)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "api", "at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "api.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_results(result, console)
    console.print(f"results: {path}")


@bench_app.command("load")
def load(
    minutes: Annotated[
        float, typer.Option(help="how long to hold the rate (CI: 1, long form: 10)")
    ] = 1.0,
    rate: Annotated[
        float, typer.Option(help="events per second sent (issue 14's target: 5,000)")
    ] = 5000.0,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Hold a rate for N minutes against a worker process; memory (RSS) and lag over time.

    Starts its own broker and Redis, chDB in a temporary folder. Stable means no upward
    trend: the slopes of RSS (after warm-up) and of the backlog stay under small bounds.
    """
    from cli._bench_load import run_bench_load

    run_bench_load(minutes, rate, out, lambda m: console.print(m))


@bench_app.command("scale-out")
def scale_out(
    leads: Annotated[int, typer.Option(help="generated leads (about 5 events each)")] = 30_000,
    days: Annotated[
        int, typer.Option(help="days of event time they span (a replay of months closes every"
                               " anomaly window of those months within the run)")
    ] = 2,
    workers: Annotated[
        str, typer.Option(help="stream worker counts to run, comma-separated")
    ] = "1,2",
    rounds: Annotated[int, typer.Option(help="rounds of every count, alternating", min=1)] = 3,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Throughput and CPU per event with 1, then 2 stream workers on the same broker and input.

    One process per role (sink, learner, N stream workers) on a broker and Redis of its
    own; measured between 20% and 90% of the input handled. Reports events/s, CPU
    microseconds per event by role (stream, sink, learner, broker, redis), the ratio
    2 workers / 1 and how CPU per event grew (issue 15: ratio >= 1.3, growth <= 10%).
    """
    from cli._bench_scale_out import run_bench_scale_out

    try:
        counts = [int(n) for n in workers.split(",") if n.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"--workers takes counts like 1,2: {exc}") from exc
    if not counts or min(counts) < 1:
        raise typer.BadParameter("--workers takes counts of at least 1, like 1,2")
    run_bench_scale_out(leads, out, lambda m: console.print(m), streams=counts, days=days,
                        rounds=rounds)  # fmt: skip


@bench_app.command("recommendations")
def recommendations(
    seeds: Annotated[int, typer.Option(help="simulated worlds (paired comparisons)")] = 200,
    periods: Annotated[int, typer.Option(help="simulated periods (weeks) per world")] = 12,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Budget recommendations against "keep the current allocation" and "proportional to
    last period's conversions", in a market simulated from the generator's hidden truth.

    Reports the gain in cumulative return over the better baseline with a 95% interval.
    """
    from rich.progress import Progress

    from cli._bench_recommendations import recommendations_benchmark

    with Progress(console=console) as progress:
        task = progress.add_task("simulating worlds", total=seeds + 2 * 50)
        result = {"benchmark": "recommendations", "at": datetime.now(UTC).isoformat(timespec="seconds")}
        result |= recommendations_benchmark(seeds, periods, lambda: progress.advance(task))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "recommendations.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps({k: result[k] for k in ("mean_cumulative_return_usd", "better_baseline", "targets")}))
    console.print(f"results: {path}")


@bench_app.command("attribution")
def attribution(
    seeds: Annotated[int, typer.Option(help="generated journey datasets (seeds 1..N)")] = 5,
    leads: Annotated[int, typer.Option(help="leads per seed")] = 20_000,
    touchpoints: Annotated[
        int, typer.Option(help="touchpoints of the speed run (0: none)")
    ] = 1_000_000,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Attribution models against the generator's known channel effects, and their speed."""
    from cli._bench_attribution import run

    result = run(range(1, seeds + 1), leads, 60, touchpoints, lambda m: console.print(m))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    _save(out, "attribution", {"benchmark": "attribution", "at": at, **result})


@bench_app.command("explanations")
def explanations(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(help="lead events per worker run")] = 16_000,
    rounds: Annotated[
        int, typer.Option(min=1, help="rounds of two worker runs, one with each setting")
    ] = 7,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Worker scoring throughput with explanations on and off (LEADSTREAM_MODELS__EXPLAIN).

    Runs alternate on/off on the same backlog, each an isolated `leadstream worker`
    process; reports the medians, each round's drop, their median with a bootstrap 95%
    interval (target: at most 10%, by the median of the rounds' throughput drops), and
    the in-process cost of the scoring step with and without explanations. Starts its
    own broker and Redis; chDB in a temporary folder. The defaults take 3-4 minutes on a
    quiet machine (5 on a busy one); `--events 8000 --rounds 2` is a quick check.
    """
    from cli._bench_explanations import explanation_benchmark
    from cli._bench_scoring import bench_settings, machine
    from cli._procs import start_broker, start_redis
    from cli.demo import free_port

    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    started = time.perf_counter()
    try:
        with (
            start_broker(free_port(), work / "run", detach=False) as broker,
            start_redis(free_port(), work / "run", detach=False) as redis,
        ):
            settings = bench_settings(settings_from(ctx), broker.url, redis.url, work / "chdb")
            with console.status("explanations benchmark") as status:

                def progress(message: str) -> None:
                    console.print(message)
                    status.update(message)

                found = explanation_benchmark(settings, events, rounds, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "explanations",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **found,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "explanations.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))
    console.print(f"results: {path}")


def _print(result: dict[str, Any]) -> None:
    t = Table(title="scoring benchmark")
    for col in ("path", "events/s", "paced at", "p50 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "path" else "right")
    w = result["worker"]
    for at, lat in w["latency_by_rate"].items():
        t.add_row("worker", f"{w['throughput']['events_per_s']:,}", at,
                  str(lat.get("latency_p50_ms")), str(lat.get("latency_p99_ms")))  # fmt: skip
    b = result["bare_loop"]
    t.add_row("bare_loop", f"{b['throughput']['events_per_s']:,}", "",
              str(b["latency"].get("latency_p50_ms")), str(b["latency"].get("latency_p99_ms")))  # fmt: skip
    c = result["ceiling_send_batch_relay"]["throughput"]
    t.add_row("ceiling", f"{c['events_per_s']:,}", "", "", "")
    console.print(t)
    console.print(f"ratio worker/ceiling: {result['ratio_worker_to_ceiling']}")
    console.print(
        f"ratio worker/bare: {result['ratio_worker_to_bare']}; targets: {result['targets']}"
    )
    floor = result["faust_empty_agent_events_per_s"]
    console.print(f"Faust with an empty agent: {floor if floor is None else f'{floor:,}'} events/s")
    console.print(
        f"pipeline stages, µs per event without Faust: {result['pipeline_us_per_event_without_faust']}"
    )
