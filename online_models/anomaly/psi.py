"""Population stability index against a learned reference distribution."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def psi(reference: Mapping[str, float], actual: Mapping[str, float], floor: float = 1e-3) -> float:
    """Population stability index of ``actual`` against ``reference`` (both: bin -> weight).

    Bins missing on one side count as ``floor`` of the total; 0.1 is a moderate
    shift, 0.25 a large one.

    >>> round(psi({"a": 50, "b": 50}, {"a": 50, "b": 50}), 6)
    0.0
    >>> round(psi({"a": 50, "b": 50}, {"a": 80, "b": 20}), 3)
    0.416
    """
    ref_total = sum(reference.values()) or 1.0
    act_total = sum(actual.values()) or 1.0
    out = 0.0
    for k in set(reference) | set(actual):
        r = max(reference.get(k, 0.0) / ref_total, floor)
        a = max(actual.get(k, 0.0) / act_total, floor)
        out += (a - r) * math.log(a / r)
    return out


class ReferenceDistribution:
    """The normal distribution of a binned variable, learned window by window.

    The reference is the running mean of the first ``warmup`` windows'
    proportions, then an exponentially weighted mean with step ``alpha`` of the
    windows that did not drift (a drifted window does not become normal).

    Parameters
    ----------
    warmup
        Windows averaged before :meth:`check_one` answers.
    alpha
        Step of the moving average after the warm-up.
    threshold
        PSI at and above which a window has drifted.

    Examples
    --------
    >>> ref = ReferenceDistribution(warmup=2)
    >>> ref.learn_one({"a": 500, "b": 500}); ref.learn_one({"a": 520, "b": 480})
    >>> round(ref.check_one({"a": 900, "b": 100}), 2)
    0.84
    """

    def __init__(self, warmup: int = 7, alpha: float = 0.05, threshold: float = 0.25) -> None:
        self.warmup = warmup
        self.alpha = alpha
        self.threshold = threshold
        self.n = 0
        self._p: dict[str, float] = {}

    def check_one(self, hist: Mapping[str, float]) -> float | None:
        """PSI of ``hist`` against the reference; None while warming up."""
        if self.n < self.warmup:
            return None
        return psi(self._p, hist)

    def learn_one(self, hist: Mapping[str, float]) -> None:
        """Learn one window's bin counts (skipped if it drifted, once warmed up)."""
        total = sum(hist.values())
        if total <= 0:
            return
        value = self.check_one(hist)
        if value is not None and value >= self.threshold:
            return
        self.n += 1
        a = max(self.alpha, 1.0 / self.n)
        for k in set(self._p) | set(hist):
            self._p[k] = self._p.get(k, 0.0) + a * (hist.get(k, 0.0) / total - self._p.get(k, 0.0))

    def top_shifts(self, hist: Mapping[str, float], k: int = 3) -> list[tuple[str, float, float]]:
        """The ``k`` bins whose share moved most: (bin, reference share, share now)."""
        total = sum(hist.values()) or 1.0
        moves = [(b, self._p.get(b, 0.0), hist.get(b, 0.0) / total) for b in _keys(self._p, hist)]
        return sorted(moves, key=lambda m: -abs(m[2] - m[1]))[:k]

    def to_dict(self) -> dict[str, Any]:
        """State as JSON-ready data."""
        return {"warmup": self.warmup, "alpha": self.alpha, "threshold": self.threshold,
                "n": self.n, "p": self._p}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceDistribution:
        """Rebuild from :meth:`to_dict`."""
        out = cls(data["warmup"], data["alpha"], data["threshold"])
        out.n = data["n"]
        out._p = dict(data["p"])
        return out


def _keys(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return sorted(set(a) | set(b))
