"""`leadstream bench`: benchmarks whose results are written as JSON under bench/results/."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli._context import settings_from

bench_app = typer.Typer(
    help="Benchmarks; each writes JSON under bench/results/.", no_args_is_help=True
)
console = Console()

#: Targets from the walking-skeleton issue.
TARGET_EPS = 10_000
TARGET_RATIO = 0.5


@bench_app.command("scoring")
def scoring(
    ctx: typer.Context,
    events: Annotated[
        int, typer.Option(help="lead events in the throughput (backlog) phase")
    ] = 100_000,
    rate: Annotated[
        float, typer.Option(help="events per second in the paced latency phase (below capacity)")
    ] = 2000.0,
    latency_seconds: Annotated[float, typer.Option(help="length of the paced phase")] = 10.0,
    profile: Annotated[
        bool, typer.Option(help="profile the worker and save the top functions")
    ] = False,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Worker (ingest → score → leads.scored) against a bare aiokafka decode-score-produce loop.

    Both run in the same process, on the same embedded broker, with the same trained model;
    reports events per second, p50/p99 latency from event to scored, and the ratio.
    """
    from cli._bench_scoring import (
        bench_settings,
        faust_floor,
        machine,
        run_bare_phases,
        run_worker_phases,
        stage_costs,
        top_functions,
    )
    from cli._procs import start_broker, start_redis
    from cli.demo import free_port

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
                settings, events, rate, latency_seconds, prof, lambda m: console.print(m)
            )
            top = top_functions(prof) if prof else ""
            console.print("bare loop: the same two phases")
            b_tp, b_lat = run_bare_phases(settings, events, rate, latency_seconds)
            console.print("Faust with an empty agent; then the pipeline's stages without Faust")
            floor = faust_floor(settings, events)
            stages = stage_costs(settings, min(events, 20000))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = w_tp.eps / b_tp.eps if b_tp.eps else 0.0
    result = {
        "benchmark": "scoring",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "worker": {"throughput": w_tp.summary(), "latency": w_lat.summary()},
        "bare_loop": {"throughput": b_tp.summary(), "latency": b_lat.summary()},
        "ratio_worker_to_bare": round(ratio, 3),
        "faust_empty_agent_events_per_s": round(floor),
        "pipeline_us_per_event_without_faust": stages,
        "targets": {
            "events_per_s": TARGET_EPS, "ratio": TARGET_RATIO,
            "met": w_tp.eps >= TARGET_EPS and ratio >= TARGET_RATIO,
        },
        "seconds_total": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scoring.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if profile:
        (out / "scoring-profile.txt").write_text(top)
    _print(result)
    console.print(f"results: {path}")


@bench_app.command("learning")
def learning(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="leads in the generated stream")] = 20000,
    seed: Annotated[int, typer.Option(help="generator seed")] = 7,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """The real pipeline replayed in event-time order: prequential AUC against the truth's AUC.

    Starts its own Redis; chDB in a temporary folder. Also reports the learner's speed.
    """
    from cli._bench_learning import bench_learning_settings, learning_benchmark
    from cli._procs import start_redis
    from cli.demo import free_port

    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    try:
        with start_redis(free_port(), work / "run", detach=False) as redis:
            settings = bench_learning_settings(settings_from(ctx), redis.url, work)
            with console.status(f"replaying {leads} leads"):
                result = learning_benchmark(settings, leads, seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "learning",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    result["targets"] = {
        "ratio_to_truth": 0.97, "learner_examples_per_s": 20000,
        "met": result["ratio_to_truth"] >= 0.97 and (result["learner_examples_per_s"] or 0) >= 20000,
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / "learning.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(result))
    console.print(f"results: {path}")


@bench_app.command("evaluate")
def evaluate_quality(
    seeds: Annotated[int, typer.Option(help="data sets of each shape")] = 3,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """`leadstream evaluate` against a batch scikit-learn logistic regression on the same history.

    Generated tables shaped like real lead data (many weak numeric columns, imbalance,
    high-cardinality categories, missing values). Needs scikit-learn (the dev extra).
    """
    from cli._bench_evaluate import compare

    result = {"benchmark": "evaluate", "at": datetime.now(UTC).isoformat(timespec="seconds")}
    with console.status("evaluating"):
        result |= compare(seeds=seeds)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "evaluate.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    t = Table(title="evaluate vs batch scikit-learn logistic regression")
    for col in (
        "data set",
        "seed",
        "rows",
        "positives",
        "AUC",
        "sklearn AUC",
        "lift",
        "sklearn lift",
    ):
        t.add_column(col, justify="left" if col == "data set" else "right")
    for name, value in result.items():
        if isinstance(value, dict) and "runs" in value:
            for r in value["runs"]:
                t.add_row(name, str(r["seed"]), str(r["rows"]), str(r["positive_rate"]), str(r["auc"]),
                          str(r["sklearn_auc"]), str(r["lift_top_decile"]), str(r["sklearn_lift_top_decile"]))  # fmt: skip
    console.print(t)
    console.print(f"targets: {result['targets']}; results: {path}")


def _print(result: dict[str, object]) -> None:
    t = Table(title="scoring benchmark")
    for col in ("path", "events/s", "p50 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "path" else "right")
    for name in ("worker", "bare_loop"):
        r = result[name]
        assert isinstance(r, dict)
        tp, lat = r["throughput"], r["latency"]
        t.add_row(
            name,
            f"{tp['events_per_s']:,}",
            str(lat.get("latency_p50_ms")),
            str(lat.get("latency_p99_ms")),
        )
    console.print(t)
    console.print(
        f"ratio worker/bare: {result['ratio_worker_to_bare']}; targets: {result['targets']}"
    )
    console.print(
        f"Faust with an empty agent: {result['faust_empty_agent_events_per_s']:,} events/s"
    )
    console.print(
        f"pipeline stages, µs per event without Faust: {result['pipeline_us_per_event_without_faust']}"
    )
