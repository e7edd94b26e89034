"""Champion and challengers: models scored on the same examples, and when one should take over.

Every candidate scores each labelled example before learning it (prequential), so
all of them are judged on the same examples. :func:`compare` asks whether a
challenger beats the champion over the rolling window with a paired test on the
per-example log loss: the mean difference ``d̄`` of ``loss(champion) − loss(challenger)``
over the last ``n`` examples both scored, its standard error ``s/√n``, and
``z = d̄ / (s/√n)`` (a Diebold–Mariano test with no autocorrelation correction).
A challenger wins only if ``n`` reaches the minimum, ``z`` exceeds the critical
value, and its mean log loss is lower by at least the relative margin.

Under delayed feedback (every label policy but ``horizon``) a lead is learned long before
its outcome is known, as a fake or weighted negative, so a score taken when the label
arrives would already contain that lead. Each candidate is therefore judged on the score
it gave when the lead was scored (:meth:`online_models.bundle.ModelBundle.learn_provisional`
keeps it), the same moment the published score was given: the comparison is on the
published probability "converts within the horizon", for champion and challengers alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from online_models.evaluation import auc
from online_models.kinds import Scorer
from online_models.prequential import ClassificationMetrics, log_loss_one


@dataclass
class Candidate:
    """One model of the learner: champion or challenger.

    ``since`` is the learner's example count when the model started learning;
    ``scored_through`` the latest scoring time (Unix seconds) of the provisional negatives
    learned before it existed (``fake_negative`` policy; 0 for a model there from the start).
    """

    name: str
    model: Scorer
    metrics: ClassificationMetrics
    since: int = 0
    scored_through: float = 0.0


@dataclass(frozen=True)
class Policy:
    """When a challenger is promoted."""

    min_examples: int = 2000
    z: float = 3.0
    margin: float = 0.005
    check_every: int = 250


@dataclass(frozen=True)
class Comparison:
    """The evidence of one champion-challenger comparison."""

    champion: str
    challenger: str
    examples: int
    champion_logloss: float
    challenger_logloss: float
    mean_difference: float
    standard_error: float
    z: float
    relative_improvement: float
    champion_auc: float | None
    challenger_auc: float | None
    better: bool
    test: str = "paired z-test on per-example log loss over the rolling window"

    def evidence(self) -> dict[str, Any]:
        """As stored in ``model_promotions.evidence``."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def compare(
    champion: Candidate, challenger: Candidate, policy: Policy
) -> Comparison | None:
    """Compare on the examples both scored in the window; None before ``min_examples``.

    Examples
    --------
    >>> import random
    >>> from online_models.lead_scorer import LeadScorer
    >>> rng = random.Random(3)
    >>> a = Candidate("a", LeadScorer(), ClassificationMetrics(3000))
    >>> b = Candidate("b", LeadScorer(), ClassificationMetrics(3000))
    >>> for _ in range(3000):
    ...     y = rng.random() < 0.3
    ...     a.metrics.update(y, 0.3)
    ...     b.metrics.update(y, min(0.95, max(0.05, 0.3 + (0.3 if y else -0.1) + rng.gauss(0, 0.1))))
    >>> c = compare(a, b, Policy(min_examples=1000))
    >>> c.better, c.examples, c.z > 3
    (True, 3000, True)
    """
    n = min(len(champion.metrics.recent), len(challenger.metrics.recent))
    if n < policy.min_examples or n < 2:
        return None
    old = list(islice(reversed(champion.metrics.recent), n))
    new = list(islice(reversed(challenger.metrics.recent), n))
    diffs = []
    loss_old = loss_new = 0.0
    for (y, p_old), (y2, p_new) in zip(old, new, strict=True):
        if y != y2:
            raise ValueError("champion and challenger windows are not aligned")
        lo, ln = log_loss_one(y, p_old), log_loss_one(y, p_new)
        loss_old += lo
        loss_new += ln
        diffs.append(lo - ln)
    mean = math.fsum(diffs) / n
    var = math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)
    se = math.sqrt(var / n)
    z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
    champion_loss, challenger_loss = loss_old / n, loss_new / n
    relative = (champion_loss - challenger_loss) / champion_loss if champion_loss else 0.0
    labels = [int(y) for y, _ in old]
    auc_old = auc(labels, [p for _, p in old])
    auc_new = auc(labels, [p for _, p in new])
    return Comparison(
        champion=champion.name, challenger=challenger.name, examples=n,
        champion_logloss=champion_loss, challenger_logloss=challenger_loss,
        mean_difference=mean, standard_error=se, z=z, relative_improvement=relative,
        champion_auc=None if math.isnan(auc_old) else auc_old,
        challenger_auc=None if math.isnan(auc_new) else auc_new,
        better=z > policy.z and relative >= policy.margin,
    )  # fmt: skip
