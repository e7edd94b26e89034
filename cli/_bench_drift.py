"""Drift benchmark: the real pipeline replayed through a concept drift injected by the generator.

The generator changes the hidden propensity function halfway through the leads
(by default ``drift_to="reversed_firmographics"``: the effects of company size,
seniority and free-mail reverse; engagement and channel matter as before; about as
predictable as before; or ``fading_engagement``). The stream runs through :func:`cli._bench_learning.replay` (label
join, learner, model hand-off) with a 14-day label horizon.

Labels reach the learner late, positives sooner than negatives, so leads created
after the drift at first make up a small share of what the learner sees. Two drift
points are reported, in labelled examples (the learner's order):

- ``first_drifted_example``: the first example of a lead created after the drift;
- ``drift_reaches_learner``: the first example from which most of the next 500
  examples are of leads created after the drift.

Detection delay is counted from both, and also as the number of examples of leads
created after the drift that the learner had learned when the detector fired. The rolling AUC is that of the published
scores (each given before the lead's outcome was known) over the last 2,000
labelled examples. Its pre-drift level is taken over the 2,000 examples before the
first drifted example; recovery is the first point, counted from where the drift
reaches the learner, at which a window made only of examples after that point is
within 0.02 of the pre-drift level.

Some drifts make the outcome less predictable: after ``fading_engagement`` even the
true propensities rank the new leads worse (their AUC falls from ~0.79 to ~0.63-0.69),
so no model can return to the pre-drift level. The target's level is therefore
required where it is attainable (``pre_drift_level_attainable``: the true
propensities' AUC 10,000 examples after the drift reaches the learner is within 0.02
of theirs before it), and on every run the model must also close its gap to the true
propensities again (``recovery_vs_truth_examples_from_reach``: the first window,
after the same point, whose AUC is within 0.02 of the truth's AUC on that window
minus the pre-drift shortfall). Both counts are reported for every run.

Label delay bounds the first count: in the 2,000 examples after the first drifted
one only ~150 (7.5%) are of drifted leads, all early conversions; the rest are
older leads whose 14-day horizon ends. A test over every example sees the drift
only once those grow (the excess-log-loss test alone fired 1,548-2,401 examples
after the first drifted one). Among the conversions, though, the drifted leads'
share climbs within a few hundred examples, so the detector also runs a test over
the conversions alone (``online_models/drift.py``). Its settings were chosen on the
learner's recorded (label, score) sequences of seeds 7 and 11, both drift kinds and
drift-free: a region of settings (tolerance ≥ 0.15 with threshold ≥ 30, or 0.2 with
25) raised no false alarm, lower ones did; the defaults are 0.2 and 25. Seed 23 was
held out.

With several seeds or drift kinds every run is reported under ``runs`` with the
worst case of each number; ``drift_free`` replays the same seeds without a drift
and counts the detector's (false) alarms over the whole stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

from config.settings import Settings
from online_models.evaluation import auc
from streaming import synthetic

WINDOW = 2000
STEP = 100


def drift_settings(settings: Settings) -> Settings:
    """The benchmark's model settings: a 14-day label horizon, the rest as configured."""
    return settings.model_copy(
        update={"models": settings.models.model_copy(update={"horizon_days": 14.0})}
    )


DriftKind = Literal["fading_engagement", "reversed_firmographics"]
DRIFT_KINDS: tuple[DriftKind, ...] = ("reversed_firmographics", "fading_engagement")


def _config(leads: int, seed: int, drift_to: DriftKind | None) -> synthetic.GeneratorConfig:
    days = max(60, leads * 240 // 40000)
    if drift_to is None:
        return synthetic.GeneratorConfig(seed=seed, leads=leads, days=days)
    return synthetic.GeneratorConfig(
        seed=seed, leads=leads, days=days, drift_at=0.5, drift_to=drift_to
    )


def _isolated(settings: Settings, run: int) -> Settings:
    """Settings for the ``run``-th replay of a session: its own Redis prefix and chDB folder."""
    chdb = settings.clickhouse.chdb_path
    return settings.model_copy(update={
        "redis": settings.redis.model_copy(update={"key_prefix": f"{settings.redis.key_prefix}-{run}"}),
        "clickhouse": settings.clickhouse.model_copy(
            update={"chdb_path": chdb.parent / f"{chdb.name}-{run}"}
        ),
    })  # fmt: skip


def drift_free_benchmark(settings: Settings, leads: int, seed: int) -> dict[str, Any]:
    """The detector's alarms on a stream of the same shape without any drift."""
    from cli._bench_learning import replay

    started = time.perf_counter()
    out = asyncio.run(replay(drift_settings(settings), _config(leads, seed, None)))
    detections = list(out["bundle"].drift.detections)
    return {
        "seed": seed, "labelled_examples": len(out["examples"]), "false_alarms": len(detections),
        "alarms_at_example": detections, "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip


def drift_runs(
    settings: Settings,
    leads: int,
    seeds: Sequence[int],
    kinds: Sequence[DriftKind],
    drift_free: bool,
    advance: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every (seed, drift kind) run, optionally the drift-free ones, and the worst cases.

    One seed and one kind without ``drift_free`` give that run's numbers unchanged.
    """
    runs: list[dict[str, Any]] = []
    for n, (seed, kind) in enumerate((s, k) for k in kinds for s in seeds):
        advance(f"seed {seed}, {kind}")
        runs.append(drift_benchmark(_isolated(settings, n), leads, seed, kind))
    if len(runs) == 1 and not drift_free:
        return runs[0]
    free: list[dict[str, Any]] = []
    if drift_free:
        for n, seed in enumerate(seeds, start=len(runs)):
            advance(f"seed {seed}, no drift")
            free.append(drift_free_benchmark(_isolated(settings, n), leads, seed))

    def worst(key: str, among: list[dict[str, Any]] = runs) -> int | None:
        values = [r[key] for r in among]
        return None if any(v is None for v in values) else max(values, default=0)

    attainable = [r for r in runs if r["pre_drift_level_attainable"]]

    return {
        "leads": leads, "seeds": list(seeds), "drift_kinds": list(kinds), "horizon_days": 14.0,
        "detection_delay_from_first_drifted": worst("detection_delay_from_first_drifted"),
        "detection_delay_from_reach": worst("detection_delay_from_reach"),
        "drifted_examples_before_detection": worst("drifted_examples_before_detection"),
        "recovery_examples_from_reach": worst("recovery_examples_from_reach"),
        "runs_with_attainable_pre_drift_level": len(attainable),
        "recovery_where_attainable": worst("recovery_examples_from_reach", attainable),
        "recovery_vs_truth_examples_from_reach": worst("recovery_vs_truth_examples_from_reach"),
        "false_alarms_before_drift": sum(r["false_alarms_before_drift"] for r in runs),
        "false_alarms_without_drift": sum(r["false_alarms"] for r in free) if drift_free else None,
        "runs": runs, "drift_free": free,
        "seconds": round(sum(r["seconds"] for r in runs + free), 1),
    }  # fmt: skip


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 3's drift targets against a result (one run or the worst case of several)."""

    def by(key: str) -> bool:
        return result[key] is not None and result[key] <= 10000

    # The pre-drift level is required where the new concept lets even the true
    # propensities reach it; everywhere, the gap to them must close again.
    if "recovery_where_attainable" in result:  # several runs
        literal = by("recovery_where_attainable")
    else:
        literal = not result.get("pre_drift_level_attainable", True) or by(
            "recovery_examples_from_reach"
        )
    vs_truth = "recovery_vs_truth_examples_from_reach"
    recovered = literal and (vs_truth not in result or by(vs_truth))

    def within(key: str) -> bool:
        return result[key] is not None and result[key] <= 2000 and recovered

    alarms = result.get("false_alarms_without_drift") or 0
    return {
        "detection_delay_examples": 2000, "recovery_examples": 10000, "auc_tolerance": 0.02,
        "met": within("detection_delay_from_first_drifted")
        and result["false_alarms_before_drift"] == 0 and alarms == 0,
        "met_counting_from_reach": within("detection_delay_from_reach"),
        "met_counting_drifted_examples": within("drifted_examples_before_detection"),
        "pre_drift_level_reached_on_every_run": by("recovery_examples_from_reach"),
    }  # fmt: skip


def drift_benchmark(
    settings: Settings, leads: int, seed: int, drift_to: DriftKind = "reversed_firmographics"
) -> dict[str, Any]:
    """The benchmark's numbers for one generated stream with a drift at half of its leads."""
    from cli._bench_learning import replay

    cfg = _config(leads, seed, drift_to)
    started = time.perf_counter()
    out = asyncio.run(replay(drift_settings(settings), cfg))
    examples, truths, bundle = out["examples"], out["truths"], out["bundle"]
    drifted = [truths[e["lead_id"]].drifted for e in examples]
    labels = [int(e["label"]) for e in examples]
    scores = [float(e["score"]) for e in examples]
    first = drifted.index(True)
    reach = next(
        i for i in range(first, len(examples)) if sum(drifted[i : i + 500]) > 250
    )  # fmt: skip
    detections = [d for d in bundle.drift.detections if d > first]
    false_alarms = [d for d in bundle.drift.detections if d <= first]
    detected = detections[0] if detections else None

    def rolling(end: int) -> float:
        return auc(labels[end - WINDOW : end], scores[end - WINDOW : end])

    truth = [truths[e["lead_id"]].propensity for e in examples]

    def truth_rolling(end: int) -> float:
        return auc(labels[end - WINDOW : end], truth[end - WINDOW : end])

    before, truth_before = rolling(first), truth_rolling(first)
    ends = range(reach + WINDOW, len(examples) + 1, STEP)
    recovered = next((end for end in ends if rolling(end) >= before - 0.02), None)
    # The model's shortfall against the true propensities, back to its pre-drift size.
    gap = truth_before - before
    recovered_vs_truth = next(
        (end for end in ends if rolling(end) >= truth_rolling(end) - gap - 0.02), None
    )
    after_end = min(len(examples), reach + 10_000)
    truth_after = truth_rolling(after_end)
    promotions = [
        {k: r[k] for k in ("action", "from_model", "to_model", "examples")} | {
            "z": r["evidence"].get("z"), "challenger_auc": r["evidence"].get("challenger_auc"),
            "champion_auc": r["evidence"].get("champion_auc"),
        }
        for r in bundle.history
    ]  # fmt: skip
    return {
        "leads": leads, "seed": seed, "labelled_examples": len(examples),
        "drift": f"{drift_to} at half of the leads",
        "horizon_days": 14.0,
        "first_drifted_example": first,
        "drift_reaches_learner": reach,
        "detected_at_example": detected,
        "detection_delay_from_first_drifted": None if detected is None else detected - first,
        "detection_delay_from_reach": None if detected is None else detected - reach,
        "drifted_examples_before_detection": None if detected is None else sum(drifted[:detected]),
        "false_alarms_before_drift": len(false_alarms),
        "rolling_auc_before": round(before, 4),
        "rolling_auc_at_reach_plus_window": round(rolling(reach + WINDOW), 4),
        "rolling_auc_10000_after_reach": round(rolling(after_end), 4),
        "recovered_at_example": recovered,
        "recovery_examples_from_reach": None if recovered is None else recovered - reach,
        "truth_auc_before": round(truth_before, 4),
        "truth_auc_10000_after_reach": round(truth_after, 4),
        "pre_drift_level_attainable": truth_after >= truth_before - 0.02,
        "recovered_vs_truth_at_example": recovered_vs_truth,
        "recovery_vs_truth_examples_from_reach": (
            None if recovered_vs_truth is None else recovered_vs_truth - reach
        ),
        "promotions": promotions,
        "champion_at_end": bundle.champion,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
