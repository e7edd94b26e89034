"""`leadstream bench` commands on model quality: learning, label delay, delayed feedback,
drift, and `evaluate` against batch scikit-learn. The worker, API and product benchmarks
are in cli/bench.py, which owns the command group."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli._context import settings_from
from cli.bench import _save, bench_app, console
from config.settings import Settings


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
    from cli._bench_learning import learning_benchmark

    result = _replayed(ctx, "learning", f"replaying {leads} leads",
                       lambda settings: learning_benchmark(settings, leads, seed))  # fmt: skip
    result["targets"] = {
        "ratio_to_truth": 0.97, "learner_examples_per_s": 20000,
        "met": result["ratio_to_truth"] >= 0.97 and (result["learner_examples_per_s"] or 0) >= 20000,
    }  # fmt: skip
    _save(out, "learning", result)


@bench_app.command("label-delay")
def label_delay(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="leads in the generated stream")] = 20000,
    seed: Annotated[int, typer.Option(help="generator seed")] = 7,
    kind: Annotated[
        list[str] | None, typer.Option(help="model kinds to replay (repeatable)")
    ] = None,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """What the label delay costs each model kind, and what fake negatives win back.

    Per kind, the real pipeline is replayed with each label policy (`horizon`,
    `fake_negative`); the first replay's examples are also replayed offline with every
    label known at once. Reports the AUC over the second half of the leads relative to
    the truth's. About 6 minutes with the defaults.
    """
    from cli._bench_label_delay import label_delay_benchmark
    from online_models.kinds import parse_spec

    kinds = tuple(kind or ("logistic", "newton"))
    for spec in kinds:
        try:
            parse_spec(spec)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--kind") from exc
    result = _replayed(
        ctx, "label_delay", f"replaying {leads} leads {2 * len(kinds)} times",
        lambda settings: label_delay_benchmark(settings, leads, seed, kinds),
    )  # fmt: skip
    _save(out, "label_delay", result)


@bench_app.command("delayed-feedback")
def delayed_feedback(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="leads per generated stream")] = 60_000,
    days: Annotated[int, typer.Option(help="days over which leads arrive")] = 182,
    seeds: Annotated[str, typer.Option(help="generator seeds, comma-separated")] = "7,11,23",
    horizon: Annotated[
        list[float] | None, typer.Option(help="horizons in days (repeatable)")
    ] = None,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """Published-score quality under each label policy, against the oracle that knows every
    outcome at once: AUC, log loss and calibration per week and overall, on generated
    streams with per-channel delays, a cold start and a conversion-rate shift half-way.
    Offline (no broker, no Redis), through the learner's own code; about a minute per
    seed and horizon with the defaults. Writes bench/results/delayed_feedback.json."""
    from cli._bench_delayed_feedback import delayed_feedback_benchmark

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise typer.BadParameter("seeds are integers, e.g. 7,11,23", param_hint="--seeds") from exc
    settings = settings_from(ctx)
    started = time.perf_counter()
    with console.status(f"replaying {len(seed_list)} streams of {leads} leads"):
        result = delayed_feedback_benchmark(
            settings, leads, days, seed_list, tuple(horizon or (30.0, 90.0))
        )
    result = {
        "benchmark": "delayed_feedback",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    _save(out, "delayed_feedback", result)


def _replayed(
    ctx: typer.Context, name: str, status: str, run: Callable[[Settings], dict[str, Any]]
) -> dict[str, Any]:
    """Run a replay benchmark on its own Redis and a temporary chDB folder."""
    from cli._bench_learning import bench_learning_settings
    from cli._procs import start_redis
    from cli.demo import free_port

    work = Path(tempfile.mkdtemp(prefix="leadstream-bench-"))
    try:
        with start_redis(free_port(), work / "run", detach=False) as redis:
            settings = bench_learning_settings(settings_from(ctx), redis.url, work)
            with console.status(status):
                result = run(settings)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"benchmark": name, "at": datetime.now(UTC).isoformat(timespec="seconds"), **result}


@bench_app.command("drift")
def drift(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="leads in the generated stream (drift at half)")] = 40000,
    seeds: Annotated[str, typer.Option(help="generator seeds, comma-separated, e.g. 7,11,23")] = "7",
    drift_to: Annotated[list[str], typer.Option(
        help="drift kind (repeat for several): reversed_firmographics, fading_engagement"
    )] = ["reversed_firmographics"],  # noqa: B006
    drift_free: Annotated[bool, typer.Option(
        help="also replay each seed without a drift and count false alarms"
    )] = False,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
) -> None:
    """A concept drift injected by the generator: detection delay, rolling AUC before and after,
    examples until it recovers. Starts its own Redis; chDB in a temporary folder. Each replay
    takes ~5 minutes; several seeds or kinds report every run and the worst case."""
    from cli._bench_drift import DRIFT_KINDS, drift_runs, targets

    kinds = [k for k in DRIFT_KINDS if k in drift_to]
    if len(set(drift_to)) != len(kinds) or not kinds:
        raise typer.BadParameter(
            "use reversed_firmographics or fading_engagement", param_hint="--drift-to"
        )
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError as err:
        raise typer.BadParameter(
            "comma-separated integers, e.g. 7,11,23", param_hint="--seeds"
        ) from err
    result = _replayed(ctx, "drift", f"replaying {leads} leads through a drift",
                       lambda settings: drift_runs(settings, leads, seed_list, kinds, drift_free,
                                                   lambda m: console.log(m)))  # fmt: skip
    result["targets"] = targets(result)
    _save(out, "drift", result)


@bench_app.command("evaluate")
def evaluate_quality(
    seeds: Annotated[int, typer.Option(help="data sets of each shape")] = 5,
    out: Annotated[Path, typer.Option(help="results folder")] = Path("bench/results"),
    file: Annotated[
        Path | None,
        typer.Option(help="compare on this labelled file instead (needs --label and --time)"),
    ] = None,
    label: Annotated[str | None, typer.Option(help="with --file: the label column")] = None,
    time_col: Annotated[
        str | None, typer.Option("--time", help="with --file: the column rows are ordered by")
    ] = None,
    id_columns: Annotated[
        list[str] | None, typer.Option("--id", help="with --file: id columns to leave out")
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="with --file: the label value that counts as a conversion")
    ] = None,
) -> None:
    """`leadstream evaluate` against a batch scikit-learn logistic regression on the same history.

    With `--file`, on one labelled file of your own (results in
    `evaluate-<file name>.json`). Otherwise on generated tables shaped like real lead
    data (many weak numeric columns, imbalance,
    high-cardinality categories, missing values, counts with diminishing effects, numbers
    with thresholds, peaks and sentinel values, 5% positives in 5,000 rows), five shapes ×
    `--seeds`; per table and a summary: tables within 0.02 AUC, tables with a
    top-decile lift at least the baseline's, mean differences with paired 95% intervals.
    Needs scikit-learn (the dev extra). About 4 minutes with the defaults on 2 cores.
    """
    from cli._bench_evaluate import compare

    result: dict[str, Any] = {
        "benchmark": "evaluate", "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
    if file is not None:
        _evaluate_file(file, label, time_col, tuple(id_columns or ()), positive, out, result)
        return
    with console.status("evaluating") as status:
        result |= compare(seeds=seeds, progress=status.update)
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
        "sgd lift",
    ):
        t.add_column(col, justify="left" if col == "data set" else "right")
    for name, value in result.items():
        if isinstance(value, dict) and "runs" in value:
            for r in value["runs"]:
                t.add_row(name, str(r["seed"]), str(r["rows"]), str(r["positive_rate"]), str(r["auc"]),
                          str(r["sklearn_auc"]), str(r["lift_top_decile"]), str(r["sklearn_lift_top_decile"]),
                          str(r["sgd_lift_top_decile"]))  # fmt: skip
    console.print(t)
    console.print(f"summary: {result['summary']}")
    console.print(f"targets: {result['targets']}; results: {path}")


def _evaluate_file(
    file: Path,
    label: str | None,
    time_col: str | None,
    ids: tuple[str, ...],
    positive: str | None,
    out: Path,
    result: dict[str, Any],
) -> None:
    from cli._bench_evaluate import one_table
    from online_models.tables import read_table

    if not file.is_file():
        raise typer.BadParameter(f"{file} does not exist", param_hint="--file")
    if label is None or time_col is None:
        raise typer.BadParameter("name the label and time columns", param_hint="--label/--time")
    with console.status(f"evaluating {file.name}"):
        try:
            run = one_table(read_table(file), label, time_col, ids, positive=positive)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    result |= {"file": file.name, "label": label, "time": time_col, **run}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"evaluate-{file.name.split('.')[0]}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print_json(json.dumps(run))
    console.print(f"results: {path}")
