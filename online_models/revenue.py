"""Revenue given a win: an online regression on the lead's feature snapshot."""

from __future__ import annotations

import math

from river import stats

from online_models.lead_scorer import _clip


class RevenueModel:
    """Expected revenue of a lead if it is won, learned online from won deals.

    A linear regression (SGD on the squared error) of log revenue on the same
    standardised features the conversion model sees. Deal sizes are roughly
    log-normal, so the prediction is ``exp(mean log revenue + residual variance / 2)``,
    the mean of a log-normal. Until ``min_examples`` won deals with features have
    been learned, or for a deal whose features are unknown, the running mean of
    revenue is the answer.

    Parameters
    ----------
    learning_rate
        SGD step size.
    min_examples
        Deals with features learned before the regression is used.
    l2
        L2 regularisation strength.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> model = RevenueModel(min_examples=50)
    >>> for _ in range(3000):
    ...     size = rng.choice([10.0, 1000.0])
    ...     model.learn_one({"log_size": math.log(size)}, 4000 * (size / 50) ** 0.4)
    >>> small, big = model.predict_one({"log_size": math.log(10.0)}), model.predict_one({"log_size": math.log(1000.0)})
    >>> 2000 < small < 3000 < 10000 < big < 14000
    True
    """

    def __init__(self, learning_rate: float = 0.01, min_examples: int = 30, l2: float = 1e-4) -> None:
        self.learning_rate = learning_rate
        self.min_examples = min_examples
        self.l2 = l2
        self._mean = stats.Mean()
        self._log_mean = stats.Mean()
        self._residual = stats.Mean()  # mean squared residual of log revenue
        self._scale: dict[str, list[float]] = {}
        self._weights: dict[str, float] = {}
        self._intercept = 0.0
        self.n_learned = 0

    @property
    def mean(self) -> float:
        """Mean revenue of all deals learned (0 before the first)."""
        return float(self._mean.get()) if self._mean.n else 0.0

    def update(self, revenue: float) -> None:
        """Learn a deal whose features are unknown: only the fallback mean moves."""
        self._mean.update(revenue)

    def predict_one(self, x: dict[str, float] | None) -> float:
        """Expected revenue of a lead with features ``x`` should it be won."""
        if x is None or self.n_learned < self.min_examples:
            return self.mean
        z = self._predict_log(x)
        return math.exp(z + self._residual.get() / 2.0)

    def learn_one(self, x: dict[str, float], revenue: float) -> None:
        """Learn one won deal's revenue from the lead's feature snapshot."""
        self._mean.update(revenue)
        target = math.log(max(revenue, 1.0))
        if not self._log_mean.n:
            self._intercept = target
        self._log_mean.update(target)
        scale = self._scale
        for name, value in x.items():
            if "=" in name:
                continue
            s = scale.get(name)
            if s is None:
                scale[name] = [1.0, value, 0.0]
            else:
                s[0] += 1.0
                old = s[1]
                s[1] = old + (value - old) / s[0]
                s[2] += ((value - old) * (value - s[1]) - s[2]) / s[0]
        xt = [(name, self._scaled(name, v)) for name, v in x.items()]
        z = self._intercept + sum(self._weights.get(n, 0.0) * v for n, v in xt)
        err = z - target
        self._residual.update(err * err)
        lr, l2, w = self.learning_rate, self.l2, self._weights
        g = max(-5.0, min(5.0, err))  # one odd deal must not throw the weights
        self._intercept -= lr * g
        for name, v in xt:
            old_w = w.get(name, 0.0)
            w[name] = old_w - lr * (g * v + l2 * old_w)
        self.n_learned += 1

    def _scaled(self, name: str, value: float) -> float:
        if "=" in name:
            return value
        s = self._scale.get(name)
        if s is None or s[2] <= 0:
            return 0.0
        return _clip((value - s[1]) / math.sqrt(s[2]))

    def _predict_log(self, x: dict[str, float]) -> float:
        w = self._weights
        return self._intercept + sum(w.get(n, 0.0) * self._scaled(n, v) for n, v in x.items())
