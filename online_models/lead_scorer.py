"""The default lead-conversion model: scaled numbers, indicator categories, logistic regression."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from river import base


class Contribution(NamedTuple):
    """One feature's signed share of the logit (a tuple: one is built per feature per score)."""

    feature: str
    value: float
    contribution: float


@dataclass(frozen=True, slots=True)
class Explanation:
    """A score with its logit split into an intercept and per-feature contributions.

    ``raw`` holds (feature, value, contribution) tuples; :class:`Contribution`
    objects are built on demand, since scoring needs only the top few. For every
    model, ``intercept + Σ contributions == logit``. ``exact`` says whether the
    contributions are the model's own terms (a linear model) or an approximation
    (a tree model: see :class:`online_models.tree_scorer.TreeScorer`).
    """

    proba: float
    logit: float
    intercept: float
    raw: list[tuple[str, float, float]]
    exact: bool = True

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
    and variances (and clipped to ±8 standard deviations); indicator features
    (``field=value``) pass through. Since the model is linear in the transformed
    features, ``weight × transformed value`` per feature plus the intercept is
    exactly the logit.

    Learning is SGD on the log loss (the L2 term applies to the weights of the
    features present, as in River's ``LogisticRegression``), either with one step
    size for every weight (``sgd``) or with AdaGrad's per-feature steps
    (``adagrad``: ``learning_rate / sqrt(1 + Σ past squared gradients)``), so that
    rare categories learn fast and frequent ones settle. Written out so that one pass
    computes the score and the update: the learner's test-then-train costs one dot
    product per example, not two.

    Parameters
    ----------
    learning_rate
        Step size (SGD), or base step size (AdaGrad), of the weights and the intercept.
    l2
        L2 regularisation strength.
    prior
        The score before anything is learned (sets the initial intercept).
    optimizer
        ``sgd`` or ``adagrad``.

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

    def __init__(
        self,
        learning_rate: float = 0.03,
        l2: float = 1e-4,
        prior: float = 0.1,
        optimizer: Literal["sgd", "adagrad"] = "sgd",
    ) -> None:
        if not 0 < prior < 1:
            raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
        if optimizer not in ("sgd", "adagrad"):
            raise ValueError(f"optimizer must be 'sgd' or 'adagrad', got {optimizer!r}")
        self.learning_rate = learning_rate
        self.l2 = l2
        self.prior = prior
        self.optimizer = optimizer
        self._g2: dict[str, float] = {}  # AdaGrad: 1 + sum of squared gradients per weight
        self._g2_intercept = 1.0
        # Running scale of each numeric feature: [count, mean, population variance].
        self._scale: dict[str, list[float]] = {}
        self._weights: dict[str, float] = {}
        self._intercept = math.log(prior / (1 - prior))
        self.n_learned = 0

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def weights(self) -> dict[str, float]:
        """A copy of the weights, on the standardised features."""
        return dict(self._weights)

    @property
    def intercept(self) -> float:
        """The intercept of the logit."""
        return self._intercept

    def _scaled(self, name: str, value: float) -> float:
        if "=" in name:
            return value
        s = self._scale.get(name)
        if s is None or s[2] <= 0:
            return 0.0  # never seen while learning (or constant): no scale yet, so no effect
        return _clip((value - s[1]) / math.sqrt(s[2]))

    def learn_one(
        self, x: dict[Any, Any], y: base.typing.ClfTarget, w: float = 1.0, **kwargs: Any
    ) -> None:
        self.predict_learn_one(x, bool(y), w)

    def predict_learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> float:
        """Score ``x`` with the current model, then learn ``(x, y)``; returns the score.

        The prequential (test-then-train) step in one pass over the features: the
        score and the step use the scale known before this example (so the score is
        exactly what :meth:`predict_proba_one` gave), then the scale learns ``x``.
        ``w`` weighs the example's log loss (importance weighting of delayed feedback:
        its gradient is ``w`` times the unweighted one; the L2 term is not weighted).
        The hot loop of the learner, hence written out.
        """
        weights = self._weights
        scale = self._scale
        sqrt = math.sqrt
        xt: list[tuple[str, float]] = []
        z = self._intercept
        for name, value in x.items():
            if "=" in name:
                v = value
            else:
                s = scale.get(name)
                if s is None:
                    scale[name] = [1.0, value, 0.0]
                    v = 0.0
                else:
                    var = s[2]
                    v = (value - s[1]) / sqrt(var) if var > 0 else 0.0
                    v = _CLIP if v > _CLIP else -_CLIP if v < -_CLIP else v
                    n = s[0] + 1.0
                    old = s[1]
                    mean = old + (value - old) / n
                    s[0], s[1], s[2] = n, mean, var + ((value - old) * (value - mean) - var) / n
            xt.append((name, v))
            wi = weights.get(name)
            if wi is not None:
                z += wi * v
        p = _sigmoid(z)
        g = (p - (1.0 if y else 0.0)) * w
        lr, l2 = self.learning_rate, self.l2
        if self.optimizer == "sgd":
            self._intercept -= lr * g
            for name, v in xt:
                wi = weights.get(name, 0.0)
                weights[name] = wi - lr * (g * v + l2 * wi)
        else:
            self._g2_intercept += g * g
            self._intercept -= lr * g / sqrt(self._g2_intercept)
            g2 = self._g2
            for name, v in xt:
                wi = weights.get(name, 0.0)
                gi = g * v + l2 * wi
                acc = g2.get(name, 1.0) + gi * gi
                g2[name] = acc
                weights[name] = wi - lr * gi / sqrt(acc)
        self.n_learned += 1
        return p

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        p = _sigmoid(self._logit(x))
        return {False: 1.0 - p, True: p}

    def explain_one(self, x: dict[str, float]) -> Explanation:
        """The score with its exact additive decomposition of the logit.

        One pass: scale, weigh, and keep each feature's contribution. The hot path of
        the score agent with explanations on (issue 3: they may cost at most 10% of
        scoring throughput), so it builds nothing but the list of terms and the scaling
        of :meth:`_scaled` is written out here, with the same arithmetic.
        """
        weights = self._weights
        scale = self._scale
        sqrt = math.sqrt
        raw: list[tuple[str, float, float]] = []
        append = raw.append
        total = 0.0
        for name, value in x.items():
            w = weights.get(name)
            if w is None:
                continue
            if "=" in name:
                c = w * value
            else:
                s = scale.get(name)
                if s is None or s[2] <= 0:
                    c = w * 0.0  # no scale yet: no effect (a signed zero, as w × 0.0 gives)
                else:
                    v = (value - s[1]) / sqrt(s[2])
                    c = w * (_CLIP if v > _CLIP else -_CLIP if v < -_CLIP else v)
            total += c
            append((name, value, c))
        logit = self._intercept + total
        return Explanation(_sigmoid(logit), logit, self._intercept, raw)

    def explain_many(self, xs: list[dict[str, float]], top: int) -> BatchExplanation:
        """:meth:`explain_one` for many leads at once, with each one's ``top`` contributions."""
        return explain_many(self._weights, self._scale, self._intercept, xs, top)

    def _logit(self, x: dict[str, float]) -> float:
        weights = self._weights
        total = self._intercept
        for name, value in x.items():
            w = weights.get(name)
            if w is not None:
                total += w * self._scaled(name, value)
        return total


#: Standardised values are clipped: a heavy-tailed column must not swing SGD steps.
_CLIP = 8.0


def _clip(z: float) -> float:
    return _CLIP if z > _CLIP else -_CLIP if z < -_CLIP else z


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class BatchExplanation:
    """Scores of many leads with each one's top contributions, from one pass over arrays.

    ``top[i]`` lists row ``i``'s largest contributions, largest absolute effect first,
    ties in the order of the row's features (as :meth:`Explanation.top` orders them);
    ``logit[i] == intercept + Σ contributions of row i``.
    """

    proba: list[float]
    logit: list[float]
    intercept: float
    top: list[list[tuple[str, float, float]]]


def explain_many(
    weights: dict[str, float],
    scale: dict[str, list[float]],
    intercept: float,
    xs: list[dict[str, float]],
    top: int,
) -> BatchExplanation:
    """:meth:`LeadScorer.explain_one` for a batch: one matrix of contributions.

    The features of the batch become the columns of a values matrix (absent entries
    masked); scaling, clipping and weighting are column operations with the same
    arithmetic as the per-lead path, so every contribution is the same float. Only the
    logit's sum runs in another order (numpy's), a difference of rounding.
    """
    columns: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    values: list[float] = []
    for i, x in enumerate(xs):
        for name, value in x.items():
            if name not in weights:
                continue
            j = columns.get(name)
            if j is None:
                j = columns[name] = len(columns)
            rows.append(i)
            cols.append(j)
            values.append(value)
    n, f = len(xs), len(columns)
    names = list(columns)
    w = np.array([weights[name] for name in names], dtype=np.float64)
    mean = np.zeros(f)
    sd = np.ones(f)
    indicator = np.zeros(f, dtype=bool)
    unscaled = np.zeros(f, dtype=bool)
    for name, j in columns.items():
        if "=" in name:
            indicator[j] = True
            continue
        s = scale.get(name)
        if s is None or s[2] <= 0:
            unscaled[j] = True
        else:
            mean[j], sd[j] = s[1], math.sqrt(s[2])
    r = np.asarray(rows, dtype=np.intp)
    c = np.asarray(cols, dtype=np.intp)
    v = np.asarray(values, dtype=np.float64)
    z = np.where(indicator[c], v, np.clip((v - mean[c]) / sd[c], -_CLIP, _CLIP))
    z[unscaled[c]] = 0.0  # no scale yet: no effect (w × 0.0, as the per-lead path)
    contribution = w[c] * z
    logit = np.full(n, intercept)
    np.add.at(logit, r, contribution)
    # Top contributions per row: by size, ties by the feature's place in the row.
    position = np.arange(len(r)) - np.searchsorted(r, r)
    order = np.lexsort((position, -np.abs(contribution), r))
    starts = np.searchsorted(r[order], np.arange(n))
    ends = np.searchsorted(r[order], np.arange(n), side="right")
    tops: list[list[tuple[str, float, float]]] = []
    for i in range(n):
        picked = order[starts[i] : min(ends[i], starts[i] + top)]
        tops.append([(names[cols[k]], values[k], float(contribution[k])) for k in picked])
    logits = logit.tolist()
    return BatchExplanation([_sigmoid(x) for x in logits], logits, intercept, tops)
