"""A robust seasonal baseline: one series' normal range by weekday and hour of day."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from scipy import special

Family = Literal["count", "ratio", "cost", "mean", "value"]

_DAY = 86_400
_SEASONS = (("dow", 7), ("hod", 24))
# Observations are clipped to _CLIP_Z standard deviations before they are learned, so an
# anomaly moves the baseline only a little; beyond _SPREAD_Z they teach no dispersion
# (the start of an anomaly must not widen the normal range that should expose it).
_CLIP_Z = 3.0
_SPREAD_Z = 2.5


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one window's value compares with the series' normal range.

    ``surprise`` is ``-log10`` of the one-sided tail probability of the value
    under the learned model (4 means a 1-in-10,000 window).
    """

    value: float
    expected: float
    low: float
    high: float
    surprise: float
    direction: Literal["up", "down"]


class SeasonalBaseline:
    """Online normal range of a windowed series: level × weekday factor × hour-of-day factor.

    Counts and costs are seasonal; rates and means (``ratio``, ``mean``, ``value``) have a
    level only.
    The level is an exponentially weighted mean of the de-seasonalised values;
    each weekday and hour-of-day factor an exponentially weighted mean of the
    value over the rest of the model. Rates start as running means (step
    ``1/(k+1)``) so a slot is usable after one visit. Once warmed up, values
    are clipped to the normal range before they are learned (an anomaly barely
    moves the baseline). The noise model depends on the family:

    - ``count``: negative binomial, variance ``μ + φμ²`` (Poisson plus learned over-dispersion);
    - ``ratio``: binomial on the window's denominator ``n``, plus learned extra variance;
    - ``cost``: an amount over a count ``n`` (cost per lead), log-normal: the variance of
      its log is ``1/n`` (the count's Poisson noise) plus the amount's learned variance;
    - ``mean``: a mean whose sampling variance is ``1/n`` (``n`` is its precision), plus
      learned extra variance;
    - ``value``: normal with a scale learned from absolute deviations.

    Parameters
    ----------
    family
        ``count``, ``ratio`` or ``value``.
    window_s
        Window length in seconds; below a day, hour-of-day seasonality is learned too.
    warmup
        Windows learned before :meth:`check_one` gives a verdict.
    level_alpha
        Smallest step of the level's moving average.
    season_alpha
        Smallest step of a seasonal factor's moving average.
    range_surprise
        ``-log10`` tail probability at which the reported normal range ends.
    min_scale
        Smallest standard deviation of a ``value`` or ``mean`` series (in its unit).
    seasonal
        Learn weekday and hour-of-day factors (counts and costs only); False: a level only.

    Attributes
    ----------
    n
        Windows learned.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> day = 86_400
    >>> model = SeasonalBaseline("count", window_s=day, warmup=14)
    >>> for d in range(42):  # weekdays ~100 leads, weekends ~30
    ...     mean = 30 if d % 7 in (2, 3) else 100
    ...     model.learn_one(sum(rng.random() < mean / 400 for _ in range(400)), d * day)
    >>> v = model.check_one(31, 44 * day)  # a Saturday (1970-01-03 + 6 weeks): normal
    >>> 25 < v.expected < 35, v.surprise < 2
    (True, True)
    >>> model.check_one(31, 46 * day).surprise > 6  # the same count on a Monday: a collapse
    True
    """

    def __init__(
        self,
        family: Family = "count",
        window_s: int = 3600,
        warmup: int = 336,
        level_alpha: float = 0.1,
        season_alpha: float = 0.1,
        range_surprise: float = 4.0,
        min_scale: float = 0.0,
        seasonal: bool = True,
    ) -> None:
        if family not in ("count", "ratio", "cost", "mean", "value"):
            raise ValueError(f"family must be count, ratio, cost, mean or value, got {family!r}")
        self.family = family
        self.window_s = window_s
        self.warmup = warmup
        self.level_alpha = level_alpha
        self.season_alpha = season_alpha
        self.range_surprise = range_surprise
        self.min_scale = min_scale
        self.seasonal = seasonal
        self.n = 0
        self._level = 0.0
        self._n_mean = 0.0  # typical denominator (ratio, mean)
        self._last_z = 0.0  # the previous window's standardised distance (ratio)
        self._spread = 0.0  # count: over-dispersion φ; ratio: relative extra variance; value: MAD
        self._factors: dict[str, list[float]] = {name: [1.0] * k for name, k in _SEASONS}
        self._visits: dict[str, list[int]] = {name: [0] * k for name, k in _SEASONS}

    # -- model ------------------------------------------------------------------------

    def _slots(self, t: float) -> dict[str, int]:
        if not self.seasonal or self.family in ("ratio", "mean", "value"):
            # Rates and means of a window are noisy and weakly seasonal: a seasonal factor
            # learned from a few noisy visits would hurt more than it helps.
            return {}
        days = int(t // _DAY)
        slots = {"dow": (days + 3) % 7}  # 1970-01-01 was a Thursday; Monday is 0
        if self.window_s < _DAY:
            slots["hod"] = int(t % _DAY) // 3600
        return slots

    def _seasonal(self, slots: dict[str, int], leave_out: str | None = None) -> float:
        out = 1.0
        for name, slot in slots.items():
            if name != leave_out:
                out *= self._factors[name][slot]
        return out

    def expected(self, t: float) -> float:
        """The expected value of the window starting at ``t`` (epoch seconds)."""
        return self._level * self._seasonal(self._slots(t))

    def _variance(self, mu: float, n: float) -> float:
        if self.family == "count":
            return max(mu, 0.5) + max(self._spread, 0.0) * mu * mu
        if self.family == "ratio":
            p = min(max(mu, 1e-4), 1 - 1e-4)
            return p * (1 - p) / max(n, 1.0) + max(self._spread, 0.0) * p * p
        if self.family == "cost":  # of the log
            return 1.0 / max(n, 1.0) + max(self._spread, 1e-4)
        if self.family == "mean":
            return 1.0 / max(n, 1e-9) + max(self._spread, 0.0) + (self.min_scale**2)
        scale = max(self._spread * 1.2533, 0.02 * abs(mu), self.min_scale, 1e-9)  # mean |dev| → σ for a normal
        return scale * scale

    def _tail(self, x: float, mu: float, n: float, upper: bool) -> float:
        """One-sided probability of a value at least as far from ``mu`` as ``x``."""
        if self.family == "count":
            # Negative binomial with r = 1/φ, p = 1/(1 + φμ), through the regularised incomplete
            # beta function (the scipy.stats object costs milliseconds to build per call).
            mu = max(mu, 0.05)
            phi = max(self._spread, 1e-6)
            r, p = 1.0 / phi, 1.0 / (1.0 + phi * mu)
            k = max(round(x), 0)
            if upper:
                return 1.0 if k == 0 else float(special.betainc(k, r, 1.0 - p))
            return float(special.betainc(r, k + 1, p))
        sd = math.sqrt(self._variance(mu, n))
        if self.family == "cost":
            return _normal_sf(abs(_log(x) - _log(mu)) / sd)
        gap = abs(x - mu) - (0.5 / max(n, 1.0) if self.family == "ratio" else 0.0)
        return _normal_sf(max(gap, 0.0) / sd)

    def _bounds(self, mu: float, n: float) -> tuple[float, float]:
        """The normal range: the central part with tails of ``10**-range_surprise`` each side."""
        q = 10.0**-self.range_surprise
        if self.family == "count":  # quantiles of the negative binomial
            phi = max(self._spread, 1e-6)
            r, p = 1.0 / phi, 1.0 / (1.0 + phi * max(mu, 0.05))
            low, high = special.nbdtrik(q, r, p), special.nbdtrik(1.0 - q, r, p)
            return float(math.floor(low)), float(math.ceil(high))
        half = NormalDist().inv_cdf(1.0 - q) * math.sqrt(self._variance(mu, n))
        if self.family == "cost":
            return mu * math.exp(-half), mu * math.exp(half)
        low = mu - half
        return (max(low, 0.0) if self.family != "value" or mu >= 0 else low), mu + half

    # -- River-style API --------------------------------------------------------------

    def check_one(self, x: float, t: float, n: float = 1.0) -> Verdict | None:
        """Compare ``x`` (the window starting at ``t``; ``n`` its denominator) with the normal range.

        None while the model is warming up.
        """
        if self.n < self.warmup or (self._level <= 0 and self.family != "value"):
            return None
        mu = self.expected(t)
        upper = x >= mu
        p = max(self._tail(x, mu, n, upper), 1e-300)
        if self.family == "ratio":
            # Evidence over two windows (Stouffer's sum of their z): a rate that stays
            # moderately off for two windows is as telling as one far-off window.
            z = self._z(x, mu, n)
            if z * self._last_z > 0:
                p = min(p, _normal_sf(abs(z + self._last_z) / math.sqrt(2.0)))
        low, high = self._bounds(mu, n)
        return Verdict(x, mu, low, high, -math.log10(max(p, 1e-300)), "up" if upper else "down")

    def _z(self, x: float, mu: float, n: float) -> float:
        """Signed standardised distance of a rate from ``mu`` (continuity-corrected)."""
        gap = max(abs(x - mu) - 0.5 / max(n, 1.0), 0.0)
        return math.copysign(gap / math.sqrt(self._variance(mu, n)), x - mu)

    def learn_one(self, x: float, t: float, n: float = 1.0) -> None:
        """Learn the window starting at ``t`` whose value is ``x`` (``n``: its denominator)."""
        slots = self._slots(t)
        if self.family == "ratio":
            ready = self.n >= self.warmup and self._level > 0
            self._last_z = self._z(x, self.expected(t), n) if ready else 0.0
        if self.n >= self.warmup and self._level > 0:
            mu = self.expected(t)
            sd = math.sqrt(self._variance(mu, n))
            gap = abs(_log(x) - _log(mu)) if self.family == "cost" else abs(x - mu)
            if gap <= _SPREAD_Z * sd:
                self._learn_spread(x, mu, n)
            x = self._clip(x, mu, _CLIP_Z * sd)
        elif self.n >= max(1, self.warmup // 2):  # the seasonal factors have been seen once
            self._learn_spread(x, self.expected(t), n)
        self.n += 1
        a = max(self.level_alpha, 1.0 / self.n)
        if self.family in ("ratio", "mean"):
            # A window with a small denominator (a weekend) says less about the level.
            self._n_mean += max(0.05, 1.0 / self.n) * (n - self._n_mean)
            a *= min(1.0, n / self._n_mean) if self._n_mean > 0 else 1.0
        self._level += a * (x / self._seasonal(slots) - self._level)
        if self._level <= 0:
            return
        for name, slot in slots.items():
            visits = self._visits[name]
            visits[slot] += 1
            g = max(self.season_alpha, 1.0 / visits[slot])
            factors = self._factors[name]
            target = min(max(x / (self._level * self._seasonal(slots, leave_out=name)), 0.05), 20.0)
            # A slot that is empty for a while must not reach zero: the model divides by it.
            factors[slot] = max(factors[slot] + g * (target - factors[slot]), 1e-3)
            seen = [f for f, v in zip(factors, visits, strict=True) if v]
            mean = sum(seen) / len(seen)
            if mean > 0:  # the level carries the scale, the factors average one
                for i, v in enumerate(visits):
                    if v:
                        factors[i] /= mean

    def _clip(self, x: float, mu: float, width: float) -> float:
        if self.family == "cost":  # the width is on the log scale
            return min(max(x, mu * math.exp(-width)), mu * math.exp(width))
        return min(max(x, mu - width), mu + width)

    def _learn_spread(self, x: float, mu: float, n: float) -> None:
        # Extra variance beyond the sampling noise: each window's excess is averaged
        # unclipped below (clipping at zero would bias it up); the model uses max(., 0).
        a = max(0.03, 1.0 / (self.n + 1))
        if self.family == "count":
            if mu < 1.0:
                return
            target = min(max(((x - mu) ** 2 - mu) / (mu * mu), -1.0), 1.0)
        elif self.family == "ratio":
            p = min(max(mu, 1e-4), 1 - 1e-4)
            target = min(max(((x - p) ** 2 - p * (1 - p) / max(n, 1.0)) / (p * p), -1.0), 1.0)
        elif self.family == "cost":
            target = min(max((_log(x) - _log(mu)) ** 2 - 1.0 / max(n, 1.0), -1.0), 1.0)
        elif self.family == "mean":
            target = (x - mu) ** 2 - 1.0 / max(n, 1e-9)
        else:
            target = abs(x - mu)
        self._spread += a * (target - self._spread)

    # -- state ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Learned state and parameters as JSON-ready data (kept in Redis)."""
        return {
            "family": self.family, "window_s": self.window_s, "warmup": self.warmup,
            "level_alpha": self.level_alpha, "season_alpha": self.season_alpha,
            "range_surprise": self.range_surprise, "min_scale": self.min_scale, "seasonal": self.seasonal, "n": self.n, "level": self._level,
            "spread": self._spread, "n_mean": self._n_mean, "last_z": self._last_z, "factors": self._factors, "visits": self._visits,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeasonalBaseline:
        """Rebuild a model saved with :meth:`to_dict`.

        >>> m = SeasonalBaseline("ratio", window_s=86_400, warmup=1)
        >>> m.learn_one(0.2, 0.0, n=100)
        >>> SeasonalBaseline.from_dict(m.to_dict()).expected(0.0)
        0.2
        """
        model = cls(
            data["family"], data["window_s"], data["warmup"], data["level_alpha"],
            data["season_alpha"], data["range_surprise"], data.get("min_scale", 0.0),
            data.get("seasonal", True),
        )  # fmt: skip
        model.n = data["n"]
        model._level = data["level"]
        model._spread = data["spread"]
        model._n_mean = data.get("n_mean", 0.0)
        model._last_z = data.get("last_z", 0.0)
        model._factors = {k: list(v) for k, v in data["factors"].items()}
        model._visits = {k: list(v) for k, v in data["visits"].items()}
        return model


def _log(x: float) -> float:
    return math.log(max(x, 1e-9))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))
