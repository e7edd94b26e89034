"""Tree models (a Hoeffding tree or an adaptive random forest) behind the scorer interface."""

from __future__ import annotations

import math
from typing import Any, Literal

from river import base, forest, tree

from online_models.lead_scorer import Explanation, LeadScorer

#: Tree probabilities are kept this far from 0 and 1, so the logit stays finite.
_P_MIN = 1e-4


class TreeScorer(base.Classifier):
    """A River tree model with a memory cap, scored and explained like :class:`LeadScorer`.

    Trees have no additive split of their logit into per-feature terms. The
    explanation of a tree's score is therefore an approximation, and says so
    (``Explanation.exact`` is False): a logistic reference model learns the same
    examples alongside; its per-feature contributions are published, and the
    intercept is set to ``tree logit − Σ contributions``. The contract
    ``intercept + Σ contributions == logit`` holds for the tree's own logit; what
    the reasons say is how a linear model reads the same lead, and the intercept
    carries the difference between the two models.

    Parameters
    ----------
    kind
        ``hoeffding`` (a Hoeffding adaptive tree) or ``forest`` (an adaptive random forest).
    max_size_mb
        Memory cap in MiB, enforced by River's own memory management (a forest
        divides it among its trees): leaves are deactivated when the tree would grow past it.
    n_models
        Trees in a forest.
    seed
        Random seed of the tree model.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> model = TreeScorer("hoeffding", max_size_mb=4)
    >>> for _ in range(3000):
    ...     v = rng.random()
    ...     model.learn_one({"visits": v, "channel=ads": 1.0}, rng.random() < v)
    >>> model.predict_proba_one({"visits": 0.9})[True] > model.predict_proba_one({"visits": 0.1})[True]
    True
    >>> e = model.explain_one({"visits": 0.9, "channel=ads": 1.0})
    >>> e.exact, round(e.intercept + sum(c.contribution for c in e.contributions) - e.logit, 9)
    (False, 0.0)
    """

    def __init__(
        self,
        kind: Literal["hoeffding", "forest"] = "hoeffding",
        max_size_mb: float = 32.0,
        n_models: int = 5,
        seed: int = 0,
    ) -> None:
        if kind not in ("hoeffding", "forest"):
            raise ValueError(f"tree kind must be 'hoeffding' or 'forest', got {kind!r}")
        self.kind = kind
        self.max_size_mb = max_size_mb
        self.n_models = n_models
        self.seed = seed
        self._model: base.Classifier
        if kind == "hoeffding":
            self._model = tree.HoeffdingAdaptiveTreeClassifier(
                grace_period=200, leaf_prediction="nba", max_size=max_size_mb,
                memory_estimate_period=2000, seed=seed,
            )  # fmt: skip
        else:
            self._model = forest.ARFClassifier(
                n_models=n_models, leaf_prediction="nba", max_size=max_size_mb / n_models,
                memory_estimate_period=2000, seed=seed,
            )  # fmt: skip
        self._reference = LeadScorer(learning_rate=0.1, optimizer="adagrad")
        self.n_learned = 0

    @property
    def _multiclass(self) -> bool:
        return False

    @property
    def trees(self) -> list[Any]:
        """The River trees (one, or the forest's members), for inspecting memory use."""
        if isinstance(self._model, forest.ARFClassifier):
            return list(self._model.models)
        return [self._model]

    def _p(self, x: dict[Any, Any]) -> float:
        p = float(self._model.predict_proba_one(x).get(True, 0.0))
        return min(1.0 - _P_MIN, max(_P_MIN, p))

    def learn_one(
        self, x: dict[Any, Any], y: base.typing.ClfTarget, w: float = 1.0, **kwargs: Any
    ) -> None:
        self.predict_learn_one(x, bool(y), w)

    def predict_learn_one(self, x: dict[Any, Any], y: bool, w: float = 1.0) -> float:
        """Score ``x``, then learn ``(x, y)`` with weight ``w``; returns the score.

        River's Hoeffding tree takes the weight as it is; the forest (whose members
        take none) learns a weighted example once, and the weight enters through the
        reference model's step only.
        """
        p = self._p(x) if self.n_learned else self._reference.predict_proba_one(x)[True]
        if self.kind == "hoeffding":
            self._model.learn_one(x, y, w=w)  # type: ignore[call-arg]  # the tree takes w
        else:
            self._model.learn_one(x, y)
        self._reference.learn_one(x, y, w)
        self.n_learned += 1
        return p

    def predict_proba_one(
        self, x: dict[Any, Any], **kwargs: Any
    ) -> dict[base.typing.ClfTarget, float]:
        p = self._p(x) if self.n_learned else self._reference.predict_proba_one(x)[True]
        return {False: 1.0 - p, True: p}

    def explain_one(self, x: dict[str, float]) -> Explanation:
        """The tree's score with the reference model's contributions (see the class doc)."""
        p = self.predict_proba_one(x)[True]
        logit = math.log(p / (1.0 - p))
        ref = self._reference.explain_one(x)
        total = math.fsum(c for _, _, c in ref.raw)
        return Explanation(p, logit, logit - total, ref.raw, exact=False)
