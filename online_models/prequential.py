"""Prequential (test-then-train) metrics of one model, over a rolling window and overall.

Each example is scored before it is learned; these classes only keep score.
Pure: no I/O, no clock. ``report(scope)`` gives one row of ClickHouse's
``model_metrics`` table (without the model name, role and version).

- :class:`ClassificationMetrics`: ROC AUC, log loss, Brier score, precision, recall
  and F1 at a threshold, calibration in equal-width score bins. The window's AUC is
  exact (ranks of the kept scores); the overall AUC counts scores in 10,000 equal
  bins, so only pairs whose scores are within 1e-4 of each other count as ties.
- :class:`RegressionMetrics`: RMSE, MAE and R² of the revenue model.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

from online_models.evaluation import auc

Scope = Literal["rolling", "overall"]

_EPS = 1e-15
_AUC_BINS = 10_000


def log_loss_one(y: bool, p: float) -> float:
    """The log loss of one score (clipped away from 0 and 1).

    >>> round(log_loss_one(True, 0.8), 4), round(log_loss_one(False, 0.8), 4)
    (0.2231, 1.6094)
    """
    q = p if y else 1.0 - p
    return -math.log(q if q > _EPS else _EPS)


class _Counts:
    """Additive sums over a set of (label, score) pairs; ``sign=-1`` removes a pair."""

    __slots__ = ("calib", "hist_neg", "hist_pos", "logloss", "n", "pos", "predicted", "sq", "tp")

    def __init__(self, bins: int) -> None:
        self.n = 0
        self.pos = 0
        self.logloss = 0.0
        self.sq = 0.0
        self.tp = 0
        self.predicted = 0
        self.calib = [[0, 0.0, 0] for _ in range(bins)]  # n, sum of scores, positives
        self.hist_pos = [0] * _AUC_BINS
        self.hist_neg = [0] * _AUC_BINS

    def add(self, y: bool, p: float, threshold: float) -> None:
        self.n += 1
        self.logloss += log_loss_one(y, p)
        self.sq += (p - y) ** 2
        if p >= threshold:
            self.predicted += 1
            self.tp += y
        bins = self.calib
        k = len(bins)
        b = bins[min(k - 1, int(p * k))]
        b[0] += 1
        b[1] += p
        b[2] += y
        i = min(_AUC_BINS - 1, int(p * _AUC_BINS))
        if y:
            self.pos += 1
            self.hist_pos[i] += 1
        else:
            self.hist_neg[i] += 1

    def binned_auc(self) -> float:
        neg_total = self.n - self.pos
        if not self.pos or not neg_total:
            return float("nan")
        below = 0  # negatives in lower bins
        total = 0.0
        for npos, nneg in zip(self.hist_pos, self.hist_neg, strict=True):
            if npos:
                total += npos * (below + 0.5 * nneg)
            below += nneg
        return total / (self.pos * neg_total)


class ClassificationMetrics:
    """Prequential metrics of a conversion model.

    Parameters
    ----------
    window
        Examples in the rolling window.
    threshold
        Score at or above which a lead counts as predicted to convert.
    bins
        Equal-width calibration bins over [0, 1].

    Examples
    --------
    >>> m = ClassificationMetrics(window=3, threshold=0.5)
    >>> for y, p in [(False, 0.2), (True, 0.7), (False, 0.6), (True, 0.9)]:
    ...     m.update(y, p)
    >>> m.report("overall")["auc"], m.report("rolling")["examples"]
    (1.0, 3)
    >>> m.report("rolling")["precision"]
    0.666...
    """

    def __init__(self, window: int = 5000, threshold: float = 0.5, bins: int = 10) -> None:
        if window < 2:
            raise ValueError(f"the metrics window must hold at least 2 examples, got {window}")
        self.window = window
        self.threshold = threshold
        self.bins = bins
        self._overall = _Counts(bins)
        self._recent: deque[tuple[bool, float]] = deque(maxlen=window)

    @property
    def examples(self) -> int:
        """Examples scored so far."""
        return self._overall.n

    @property
    def recent(self) -> deque[tuple[bool, float]]:
        """The window's (label, score) pairs, oldest first."""
        return self._recent

    def update(self, y: bool, p: float) -> None:
        """Count one example scored ``p`` whose label turned out ``y``."""
        self._overall.add(y, p, self.threshold)
        self._recent.append((y, p))

    def report(self, scope: Scope) -> dict[str, Any]:
        """The metrics of one scope as a ``model_metrics`` row's values."""
        if scope == "overall":
            counts = self._overall
            area = counts.binned_auc()
        else:
            counts = _Counts(self.bins)
            for y, p in self._recent:
                counts.add(y, p, self.threshold)
            area = auc([int(y) for y, _ in self._recent], [p for _, p in self._recent])
        return self._row(counts, area)

    def _row(self, c: _Counts, area: float) -> dict[str, Any]:
        n = c.n
        precision = c.tp / c.predicted if c.predicted else 0.0
        recall = c.tp / c.pos if c.pos else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        width = 1.0 / self.bins
        calibration = [
            {"bin_low": round(i * width, 6), "bin_high": round((i + 1) * width, 6), "n": b[0],
             "mean_score": b[1] / b[0], "positive_rate": b[2] / b[0]}
            for i, b in enumerate(c.calib) if b[0]
        ]  # fmt: skip
        return {
            "examples": n,
            "positives": c.pos,
            "auc": None if math.isnan(area) else area,
            "logloss": c.logloss / n if n else None,
            "brier": c.sq / n if n else None,
            "threshold": self.threshold,
            "precision": precision if n else None,
            "recall": recall if n else None,
            "f1": f1 if n else None,
            "calibration": calibration,
            "rmse": None,
            "mae": None,
            "r2": None,
        }


class RegressionMetrics:
    """Prequential metrics of the revenue model.

    Examples
    --------
    >>> m = RegressionMetrics(window=10)
    >>> for y, yhat in [(100.0, 110.0), (200.0, 190.0), (300.0, 330.0)]:
    ...     m.update(y, yhat)
    >>> r = m.report("overall")
    >>> r["mae"], round(r["rmse"], 3), round(r["r2"], 3)
    (16.666..., 19.149, 0.945)
    """

    def __init__(self, window: int = 5000) -> None:
        self.window = window
        self._n = 0
        self._abs = 0.0
        self._sq = 0.0
        self._sum_y = 0.0
        self._sum_y2 = 0.0
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)

    @property
    def examples(self) -> int:
        """Revenues predicted so far."""
        return self._n

    def update(self, y: float, y_pred: float) -> None:
        """Count one revenue ``y`` that had been predicted as ``y_pred``."""
        e = y - y_pred
        self._n += 1
        self._abs += abs(e)
        self._sq += e * e
        self._sum_y += y
        self._sum_y2 += y * y
        self._recent.append((y, y_pred))

    def report(self, scope: Scope) -> dict[str, Any]:
        """The metrics of one scope as a ``model_metrics`` row's values."""
        if scope == "overall":
            n, sae, sse, sy, sy2 = self._n, self._abs, self._sq, self._sum_y, self._sum_y2
        else:
            pairs = self._recent
            n = len(pairs)
            sae = math.fsum(abs(y - f) for y, f in pairs)
            sse = math.fsum((y - f) ** 2 for y, f in pairs)
            sy = math.fsum(y for y, _ in pairs)
            sy2 = math.fsum(y * y for y, _ in pairs)
        sst = sy2 - sy * sy / n if n else 0.0
        return {
            "examples": n, "positives": n, "auc": None, "logloss": None, "brier": None,
            "threshold": None, "precision": None, "recall": None, "f1": None, "calibration": [],
            "rmse": math.sqrt(sse / n) if n else None,
            "mae": sae / n if n else None,
            "r2": 1.0 - sse / sst if n > 1 and sst > 0 else None,
        }  # fmt: skip
