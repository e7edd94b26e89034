"""The default lead-conversion model: scaled numbers, indicator categories, logistic regression."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from river import base, linear_model, optim, preprocessing


class Contribution(NamedTuple):
    """One feature's signed share of the logit (a tuple: one is built per feature per score)."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True, slots=True)
class Explanation:
    """A score with its logit split into an intercept and per-feature contributions.

    ``raw`` holds (feature, value, contribution) tuples; :class:`Contribution`
    objects are built on demand, since scoring needs only the top few.
    """

    proba: float
    logit: float
    intercept: float
    raw: list[tuple[str, float, float]]

    @property
    def contributions(self) -> tuple[Contribution, ...]:
        """Every feature's contribution."""
        return tuple(Contribution._make(r) for r in self.raw)

    def top(self, n: int) -> list[Contribution]:
        """The ``n`` contributions with the largest absolute effect."""
        best = heapq.nlargest(n, self.raw, key=lambda r: abs(r[2]))
        return [Contribution._make(r) for r in best]


class LeadScorer(base.Classifier):
    """Online logistic regression whose every score can be explained exactly.

    Numeric features (names without ``=``) are standardised with running means
    and variances (and clipped to ±8 standard deviations); indicator features (``field=value``) pass through. Since the
    model is linear in the transformed features, ``weight × transformed value``
    per feature plus the intercept is exactly the logit.

    Parameters
    ----------
    learning_rate
        SGD step size for the weights and the intercept.
    l2
        L2 regularisation strength.
    prior
        The score before anything is learned (sets the initial intercept).

    Attributes
    ----------
    n_learned
        Number of labelled examples learned so far.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> model = LeadScorer()
    >>> for _ in range(2000):
    ...     visits = rng.randint(0, 5)
    ...     model.learn_one({"visits": float(visits), "channel=ads": 1.0}, rng.random() < visits / 6)
    >>> model.predict_proba_one({"visits": 5.0})[True] > model.predict_proba_one({"visits": 0.0})[True]
    True
    >>> e = model.explain_one({"visits": 4.0, "channel=ads": 1.0})
    >>> round(e.intercept + sum(c.contribution for c in e.contributions), 9) == round(e.logit, 9)
    True
    """

    def __init__(self, learning_rate: float = 0.03, l2: float = 1e-4, prior: float = 0.1) -> None:
        if not 0 < prior < 1:
            raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
        self.learning_rate = learning_rate
        self.l2 = l2
        self.prior = prior
        self._scaler = preprocessing.StandardScaler()
        self._lr = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate),
            l2=l2,
            intercept_lr=learning_rate,
            intercept_init=math.log(prior / (1 - prior)),
        )
        self.n_learned = 0

    @property
    def _multiclass(self) -> bool:
        return False

    def _transform(self, x: dict[str, float]) -> dict[str, float]:
        means = self._scaler.means
        variances = self._scaler.vars
        out: dict[str, float] = {}
        for name, value in x.items():
            if "=" in name:
                out[name] = value
            elif name in means:
                var = variances[name]
                out[name] = _clip((value - means[name]) / math.sqrt(var)) if var > 0 else 0.0
            else:
                # Never seen while learning: no scale yet, so no effect.
                out[name] = 0.0
        return out

    def learn_one(self, x: dict[Any, Any], y: base.typing.ClfTarget, **kwargs: Any) -> None:
        numeric = {k: v for k, v in x.items() if "=" not in k}
        self._scaler.learn_one(numeric)
        self._lr.learn_one(self._transform(x), y)
        self.n_learned += 1

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        p = _sigmoid(self._logit(self._transform(x)))
        return {False: 1.0 - p, True: p}

    def explain_one(self, x: dict[str, float]) -> Explanation:
        """The score with its exact additive decomposition of the logit.

        One pass: scale, weigh, and keep each feature's contribution (the hot path
        of the score agent, so it does not build the transformed dict).
        """
        # River's public `weights` copies the dict on every call; read the live one.
        weights = self._lr._weights  # noqa: SLF001
        means = self._scaler.means
        variances = self._scaler.vars
        raw: list[tuple[str, float, float]] = []
        total = 0.0
        for name, value in x.items():
            w = weights.get(name) if name in weights else None
            if w is None:
                continue
            if "=" not in name:
                var = variances.get(name, 0.0)
                scaled = _clip((value - means[name]) / math.sqrt(var)) if var > 0 else 0.0
            else:
                scaled = value
            c = w * scaled
            total += c
            raw.append((name, value, c))
        intercept = float(self._lr.intercept)
        logit = intercept + total
        return Explanation(_sigmoid(logit), logit, intercept, raw)

    def _logit(self, xt: dict[str, float]) -> float:
        weights = self._lr._weights  # noqa: SLF001
        total: float = sum(weights[name] * value for name, value in xt.items() if name in weights)
        return float(self._lr.intercept) + total


#: Standardised values are clipped: a heavy-tailed column must not swing SGD steps.
_CLIP = 8.0


def _clip(z: float) -> float:
    return _CLIP if z > _CLIP else -_CLIP if z < -_CLIP else z


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
