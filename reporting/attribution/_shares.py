"""Channel shares of a data-driven model, with bootstrap intervals over leads.

Both data-driven models reduce journeys to counts by kind of journey (a path or
a cell), so resampling leads is a draw of those counts; each resample is
refitted and its shares recorded. The draw is the Poisson bootstrap (each lead
is taken a Poisson(1) number of times, so a kind with n leads gets Poisson(n)):
for many leads it matches resampling with replacement, and it is one vectorised
draw for all resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Vector = NDArray[np.float64]


@dataclass(frozen=True)
class Shares:
    """Removal-effect shares per channel, with bootstrap intervals.

    Attributes
    ----------
    shares
        Channel -> share of the removal effects (sums to 1 over channels).
    removal
        Channel -> the removal effect (in the model's own unit).
    low, high
        Channel -> bounds of the bootstrap interval of the share (NaN without one).
    level
        The interval's coverage (for example 0.9).
    replicates
        How many bootstrap resamples; 0 means no interval.
    """

    shares: dict[str, float]
    removal: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    level: float
    replicates: int


def empty(level: float) -> Shares:
    """No journeys, no shares."""
    return Shares({}, {}, {}, {}, level, 0)


def normalise(v: Vector) -> Vector:
    """``v`` over its sum (zeros stay zeros).

    >>> normalise(np.array([1.0, 3.0])).tolist()
    [0.25, 0.75]
    """
    total = v.sum()
    return v / total if total > 0 else v


def check_level(level: float) -> None:
    """A ValueError unless ``level`` is a coverage in (0, 1)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap(
    names: Sequence[str],
    n: Vector,
    removal: Callable[[Vector], Vector],
    replicates: int,
    level: float,
    seed: int,
) -> Shares:
    """The shares of ``removal(n)``, and their intervals over resampled leads.

    Parameters
    ----------
    names
        The channels, in the order of ``removal``'s vector.
    n
        Leads per kind of journey.
    removal
        Counts per kind of journey -> removal effect per channel.
    replicates, level, seed
        Resamples, coverage of the intervals and the seed of the resampling.

    Examples
    --------
    >>> s = bootstrap(["a", "b"], np.array([10.0, 30.0]), lambda n: n, 100, 0.9, 1)
    >>> s.shares
    {'a': 0.25, 'b': 0.75}
    >>> s.low["a"] < 0.25 < s.high["a"]
    True
    """
    point = removal(n)
    nan = float("nan")
    low, high = dict.fromkeys(names, nan), dict.fromkeys(names, nan)
    if replicates > 0:
        counts = np.random.default_rng(seed).poisson(n, size=(replicates, len(n)))
        draws = np.empty((replicates, len(names)))
        for b in range(replicates):
            draws[b] = normalise(removal(counts[b].astype(np.float64)))
        alpha = (1.0 - level) / 2.0
        lo, hi = np.quantile(draws, [alpha, 1.0 - alpha], axis=0)
        low = {c: float(v) for c, v in zip(names, lo, strict=True)}
        high = {c: float(v) for c, v in zip(names, hi, strict=True)}
    return Shares(
        shares={c: float(v) for c, v in zip(names, normalise(point), strict=True)},
        removal={c: float(v) for c, v in zip(names, point, strict=True)},
        low=low,
        high=high,
        level=level,
        replicates=replicates,
    )
