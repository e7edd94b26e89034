"""Drift benchmark: the real pipeline replayed through a concept drift injected by the generator.

The generator changes the hidden propensity function halfway through the leads
(``drift_to="reversed_firmographics"``: the effects of company size, seniority and
free-mail reverse; engagement and channel matter as before; about as predictable
as before). The stream runs through :func:`cli._bench_learning.replay` (label
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
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

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


def drift_benchmark(settings: Settings, leads: int, seed: int) -> dict[str, Any]:
    """The benchmark's numbers for one generated stream with a drift at half of its leads."""
    from cli._bench_learning import replay

    cfg = synthetic.GeneratorConfig(
        seed=seed, leads=leads, days=max(60, leads * 240 // 40000), drift_at=0.5,
        drift_to="reversed_firmographics",
    )  # fmt: skip
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

    before = rolling(first)
    recovered = next(
        (end for end in range(reach + WINDOW, len(examples) + 1, STEP)
         if rolling(end) >= before - 0.02),
        None,
    )  # fmt: skip
    after_end = min(len(examples), reach + 10_000)
    truth = [truths[e["lead_id"]].propensity for e in examples]
    promotions = [
        {k: r[k] for k in ("action", "from_model", "to_model", "examples")} | {
            "z": r["evidence"].get("z"), "challenger_auc": r["evidence"].get("challenger_auc"),
            "champion_auc": r["evidence"].get("champion_auc"),
        }
        for r in bundle.history
    ]  # fmt: skip
    return {
        "leads": leads, "seed": seed, "labelled_examples": len(examples),
        "drift": "reversed_firmographics at half of the leads",
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
        "truth_auc_before": round(auc(labels[first - WINDOW : first], truth[first - WINDOW : first]), 4),
        "truth_auc_10000_after_reach": round(
            auc(labels[after_end - WINDOW : after_end], truth[after_end - WINDOW : after_end]), 4
        ),
        "promotions": promotions,
        "champion_at_end": bundle.champion,
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
