"""Label-timing benchmark: what the label delay costs each model kind, and what fake negatives win back.

For each model kind, the real pipeline (as ``bench learning``) is replayed twice, once
per label policy:

``horizon`` (the default before ``es_dfm``, see ``bench delayed-feedback``)
    A conversion is learned when it happens, a negative when the horizon has passed
    (90 days later). The labelled sample at any moment holds the recent leads'
    positives without their negatives.
``fake_negative``
    Every lead is learned as a negative when it is scored, and a conversion as a
    positive when it happens (the delayed-feedback policy of Ktena et al., 2019).

The ``horizon`` replay also records, for every labelled lead, its feature snapshot, its
outcome, the batch in which it was scored and the batch in which its label reached the
learner; the examples are then replayed offline through a fresh model with every label
``immediate`` (in the batch its lead was scored in: impossible live, and what
``leadstream evaluate``'s test-then-train assumes), and ``delayed`` as recorded, a check
that the offline replay reproduces the pipeline. Reported: the ROC AUC of the scores
over the second half of the leads (by creation) relative to the true propensities' AUC.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from online_models.bundle import defaults_for
from online_models.evaluation import auc
from online_models.kinds import Scorer, build_model
from streaming import synthetic

#: Label timings of the offline replay, see the module doc.
TIMINGS: tuple[str, ...] = ("delayed", "immediate")
#: Label policies of the pipeline replays.
POLICIES: tuple[str, ...] = ("horizon", "fake_negative")


@dataclass(frozen=True)
class Recorded:
    """One labelled lead as the pipeline saw it."""

    features: dict[str, float]
    label: bool
    scored: int  # the batch in which the lead was scored
    labelled: int  # the batch in which its label reached the learner


def schedule(examples: Sequence[Recorded], timing: str) -> list[tuple[bool, int, bool]]:
    """The replay's steps in event order: ``(learn?, example index, label)``.

    Within a batch, leads are scored first and labels learned after, as in the pipeline.

    >>> ex = [Recorded({}, True, 0, 2), Recorded({}, False, 1, 3)]
    >>> schedule(ex, "delayed")
    [(False, 0, False), (False, 1, False), (True, 0, True), (True, 1, False)]
    >>> schedule(ex, "immediate")
    [(False, 0, False), (True, 0, True), (False, 1, False), (True, 1, False)]
    """
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
    steps: list[tuple[int, int, int, bool, bool]] = []  # (batch, phase, index, learn?, label)
    for i, e in enumerate(examples):
        steps.append((e.scored, 0, i, False, False))
        if timing == "immediate":
            steps.append((e.scored, 1, i, True, e.label))
        else:
            steps.append((e.labelled, 2, i, True, e.label))
    steps.sort(key=lambda s: s[:3])
    return [(learn, i, y) for _, _, i, learn, y in steps]


def replay_scores(
    make: Callable[[], Scorer], examples: Sequence[Recorded], timing: str
) -> list[float]:
    """Each example's score from a fresh model, given when its lead was scored."""
    model = make()
    scores = [0.0] * len(examples)
    for learn, i, y in schedule(examples, timing):
        if learn:
            model.learn_one(examples[i].features, y)
        else:
            scores[i] = model.predict_proba_one(examples[i].features)[True]
    return scores


def label_delay_benchmark(
    settings: Settings,
    leads: int,
    seed: int,
    kinds: Sequence[str] = ("logistic", "newton"),
) -> dict[str, Any]:
    """The ratios to the truth's AUC per kind, label policy and offline timing."""
    from cli._bench_learning import replay

    cfg = synthetic.GeneratorConfig(seed=seed, leads=leads, days=180)
    defaults = defaults_for(settings.models)
    ratios: dict[str, dict[str, float]] = {}
    common: dict[str, Any] = {}
    for kind in kinds:
        ratios[kind] = {}
        for policy in POLICIES:
            run = settings.model_copy(update={
                "models": settings.models.model_copy(update={"kind": kind, "label_policy": policy}),
                "redis": settings.redis.model_copy(
                    update={"key_prefix": f"{settings.redis.key_prefix}-{kind}-{policy}"}),
            })  # fmt: skip
            out = asyncio.run(replay(run, cfg, time_learner=False))
            examples, truths = out["examples"], out["truths"]
            by_time = sorted(
                range(len(examples)), key=lambda i: truths[examples[i]["lead_id"]].occurred_at
            )
            second = by_time[len(by_time) // 2 :]
            y = [int(examples[i]["label"]) for i in second]
            truth = auc(y, [truths[examples[i]["lead_id"]].propensity for i in second])

            def ratio(scores: Sequence[float], second: list[int] = second, y: list[int] = y,
                      truth: float = truth) -> float:  # fmt: skip
                return round(auc(y, [scores[i] for i in second]) / truth, 4)

            ratios[kind][f"pipeline_{policy}"] = ratio([float(e["score"]) for e in examples])
            if policy != "horizon":
                continue
            common = {
                "labelled_examples": len(examples), "truth_auc_second_half": round(truth, 4),
                "positive_rate": round(sum(int(e["label"]) for e in examples) / len(examples), 4),
            }  # fmt: skip
            recorded = [
                Recorded(e["features"], bool(e["label"]), out["arrived"][e["lead_id"]], step)
                for e, step in zip(examples, out["learned_at"], strict=True)
            ]
            make = functools.partial(build_model, kind, defaults)
            for timing in TIMINGS:
                ratios[kind][f"offline_{timing}"] = ratio(replay_scores(make, recorded, timing))
    return {"leads": leads, "seed": seed, **common, "ratio_to_truth": ratios}
