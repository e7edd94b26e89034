"""Label-timing benchmark: what the label delay costs each model kind, and a policy that wins it back.

One replay of the real pipeline (as ``bench learning``) records, for every labelled
lead, its feature snapshot, its outcome, the batch in which it was scored and the batch
in which its label reached the learner. The recorded examples are then replayed offline
through a fresh model of each kind under three label timings:

``delayed``
    What the pipeline does: a conversion is learned when it happens, a negative when
    the horizon has passed (90 days later).
``immediate``
    Every label in the batch its lead was scored in. Impossible live; it is what
    ``leadstream evaluate``'s test-then-train assumes.
``fake_negative``
    Every lead is learned as a negative in the batch it was scored in, and a conversion
    as a positive when it happens (the delayed-feedback policy of Ktena et al., 2019).
    Each converted lead then counts once on each side, so the model learns
    ``q = p / (1 + p)``; ``p = q / (1 - q)`` ranks leads as ``q`` does, and the AUC
    needs no correction. Not built into the pipeline: measured here first.

Under ``delayed``, the labelled sample at any moment holds the recent leads' positives
without their negatives. Reported per kind and timing: the ROC AUC of the scores over
the second half of the leads (by creation) relative to the true propensities' AUC, and
the same ratio for the scores the pipeline itself published, as a check that the
offline ``delayed`` replay reproduces it.
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

#: Label timings replayed, see the module doc.
TIMINGS: tuple[str, ...] = ("delayed", "immediate", "fake_negative")


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
    >>> schedule(ex, "fake_negative")
    [(False, 0, False), (True, 0, False), (False, 1, False), (True, 1, False), (True, 0, True)]
    """
    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
    steps: list[tuple[int, int, int, bool, bool]] = []  # (batch, phase, index, learn?, label)
    for i, e in enumerate(examples):
        steps.append((e.scored, 0, i, False, False))
        if timing == "immediate":
            steps.append((e.scored, 1, i, True, e.label))
        elif timing == "fake_negative":
            steps.append((e.scored, 1, i, True, False))
            if e.label:
                steps.append((e.labelled, 2, i, True, True))
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
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The ratios to the truth's AUC per kind and timing, for one generated stream."""
    from cli._bench_learning import replay

    cfg = synthetic.GeneratorConfig(seed=seed, leads=leads, days=180)
    if progress is not None:
        progress(f"replaying {leads} leads through the pipeline")
    out = asyncio.run(replay(settings, cfg, time_learner=False))
    examples, truths, arrived = out["examples"], out["truths"], out["arrived"]
    recorded = [
        Recorded(e["features"], bool(e["label"]), arrived[e["lead_id"]], step)
        for e, step in zip(examples, out["learned_at"], strict=True)
    ]
    by_time = sorted(range(len(examples)), key=lambda i: truths[examples[i]["lead_id"]].occurred_at)
    second = by_time[len(by_time) // 2 :]
    y = [int(examples[i]["label"]) for i in second]
    truth = auc(y, [truths[examples[i]["lead_id"]].propensity for i in second])

    def ratio(scores: Sequence[float]) -> float:
        return round(auc(y, [scores[i] for i in second]) / truth, 4)

    defaults = defaults_for(settings.models)
    ratios: dict[str, dict[str, float]] = {}
    for kind in kinds:
        ratios[kind] = {}
        for timing in TIMINGS:
            if progress is not None:
                progress(f"{kind}, {timing} labels")
            make = functools.partial(build_model, kind, defaults)
            ratios[kind][timing] = ratio(replay_scores(make, recorded, timing))
    return {
        "leads": leads, "seed": seed, "labelled_examples": len(examples),
        "positive_rate": round(sum(r.label for r in recorded) / max(1, len(recorded)), 4),
        "truth_auc_second_half": round(truth, 4),
        "pipeline_published_ratio": ratio([float(e["score"]) for e in examples]),
        "ratio_to_truth": ratios,
    }  # fmt: skip
