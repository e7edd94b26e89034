"""The data-driven model: removal effects of a first-order Markov chain over journeys.

A journey is the sequence of (non-direct) channels that touched a lead, with
repeated touches of one channel in a row counted once, ending in a conversion or
not. The chain's states are ``start``, the channels, ``conversion`` and
``null``; its transition probabilities are the observed transition counts,
normalised per state. A channel's *removal effect* is the share of the chain's
conversion probability that is lost when every transition into the channel goes
to ``null`` instead: ``1 - P(conversion | c removed) / P(conversion)``. Shares
are the removal effects normalised to sum to 1.

Bootstrap intervals resample leads (journeys) with replacement and recompute the
shares; this is cheap because journeys are counted by distinct path.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from reporting.attribution._shares import Shares, bootstrap, check_level, empty

#: A path: the channels in order (consecutive repeats collapsed), then whether it converted.
PathKey = tuple[tuple[str, ...], bool]


class _Chain:
    """Path counts turned into transition counts (one weighted bincount)."""

    def __init__(self, paths: Sequence[tuple[str, ...]], converted: Sequence[bool]) -> None:
        channels = sorted({c for p in paths for c in p})
        self.channels = channels
        k = len(channels)
        # states: 0 start, 1..k channels, k+1 conversion, k+2 null
        self.n = k + 3
        index = {c: i + 1 for i, c in enumerate(channels)}
        # every transition of every path: which path, and which cell of the n x n matrix
        owner, cell = [], []
        for row, (path, conv) in enumerate(zip(paths, converted, strict=True)):
            states = [0, *(index[c] for c in path), k + 1 if conv else k + 2]
            for a, b in itertools.pairwise(states):
                owner.append(row)
                cell.append(a * self.n + b)
        self.owner = np.array(owner, dtype=np.int64)
        self.cell = np.array(cell, dtype=np.int64)

    def conversion(self, counts: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        """P(conversion) of the chain, and of the chain without each channel."""
        n, k = self.n, len(self.channels)
        t = np.bincount(self.cell, weights=counts[self.owner], minlength=n * n).reshape(n, n)
        totals = t.sum(axis=1, keepdims=True)
        p = np.divide(t, totals, out=np.zeros_like(t), where=totals > 0)
        base = _absorb(p, k)
        without = np.empty(k)
        for c in range(k):
            q = p.copy()
            q[c + 1, :] = 0.0
            q[c + 1, k + 2] = 1.0  # every visit to the removed channel ends in null
            without[c] = _absorb(q, k)
        return base, without


def _absorb(p: NDArray[np.float64], k: int) -> float:
    """Probability of reaching ``conversion`` from ``start`` (absorbing chain)."""
    transient = k + 1  # start and the channels
    q = p[:transient, :transient]
    r = p[:transient, k + 1]
    x = np.linalg.solve(np.eye(transient) - q, r)
    return float(x[0])


def _removal(base: float, without: NDArray[np.float64]) -> NDArray[np.float64]:
    removal = 1.0 - without / base if base > 0 else np.zeros_like(without)
    return np.clip(removal, 0.0, None)


def markov_shares(
    counts: Mapping[PathKey, int],
    replicates: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Shares:
    """Removal-effect shares of the journeys in ``counts`` (path -> number of leads).

    Parameters
    ----------
    counts
        How many leads followed each path, by (channels, converted).
    replicates
        Bootstrap resamples of the leads for the intervals (0: none).
    level
        Coverage of the intervals.
    seed
        Seeds the resampling.

    Examples
    --------
    Every conversion went through ``email``; ``ads`` alone never converts:

    >>> r = markov_shares({(("ads", "email"), True): 30, (("ads",), False): 70,
    ...                    (("email",), True): 10, (("email",), False): 10}, replicates=0)
    >>> {c: round(v, 3) for c, v in r.shares.items()}
    {'ads': 0.375, 'email': 0.625}
    >>> {c: round(v, 3) for c, v in r.removal.items()}
    {'ads': 0.6, 'email': 1.0}
    """
    check_level(level)
    # sorted: the resamples repeat whatever order the rows came in
    keys = sorted(k for k, v in counts.items() if v > 0 and k[0])
    if not any(conv for _, conv in keys):
        return empty(level)
    chain = _Chain([k[0] for k in keys], [k[1] for k in keys])
    n = np.array([counts[k] for k in keys], dtype=np.float64)
    return bootstrap(
        chain.channels, n, lambda c: _removal(*chain.conversion(c)), replicates, level, seed
    )
