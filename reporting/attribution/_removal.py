"""The data-driven model: counterfactual removal effects of a conversion model.

A logistic model of conversion is fitted to the journeys: one term per channel
that created the lead and one per (non-direct) channel that reached it later.
A channel's *removal effect* is the drop in expected conversions when its
touches are taken out of every journey: the whole predicted conversion of each
lead it created (without its first touch the lead does not exist), and, for a
lead it only reached later, the fitted probability minus the probability
without the channel's term. Shares are the removal effects normalised to sum
to 1.

This is the estimand the generator's truth is defined by (see
``streaming/_synthetic_journeys.py``), estimated from data: which leads were
reached by what, and which converted. The model assumes that who is reached
does not depend on how likely the lead was to convert anyway; where it does
(for example sales calls only to hot leads), the effects are biased upwards.

Journeys are counted by cell (creating channel, set of later channels,
converted), so fitting and bootstrap resampling of leads are cheap.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from reporting.attribution._shares import Shares, bootstrap, check_level, empty

#: A cell: the creating channel, the later channels (sorted, no repeats), converted.
CellKey = tuple[str, tuple[str, ...], bool]


class _Design:
    """The cells as a design matrix: creator one-hot, then later-channel indicators."""

    def __init__(self, keys: list[CellKey]) -> None:
        self.channels = sorted({k[0] for k in keys} | {c for k in keys for c in k[1]})
        k = len(self.channels)
        at = {c: i for i, c in enumerate(self.channels)}
        self.x = np.zeros((len(keys), 2 * k))
        self.y = np.array([float(key[2]) for key in keys])
        self.creator = np.array([at[key[0]] for key in keys])
        self.start: NDArray[np.float64] | None = None
        for row, (creator, later, _) in enumerate(keys):
            self.x[row, at[creator]] = 1.0
            for c in later:
                self.x[row, k + at[c]] = 1.0

    def fit(self, n: NDArray[np.float64], ridge: float = 1e-3) -> NDArray[np.float64]:
        """Weighted logistic regression by Newton steps (a small ridge keeps it defined).

        Resamples start from the first fit's coefficients: a few steps then suffice.
        """
        beta = np.zeros(self.x.shape[1]) if self.start is None else self.start.copy()
        for _ in range(50):
            p = _sigmoid(self.x @ beta)
            w = n * p * (1.0 - p)
            grad = self.x.T @ (n * (self.y - p)) - ridge * beta
            hess = (self.x * w[:, None]).T @ self.x + ridge * np.eye(len(beta))
            step = np.linalg.solve(hess, grad)
            beta += step
            if np.max(np.abs(step)) < 1e-8:
                break
        if self.start is None:
            self.start = beta.copy()
        return beta

    def removal(self, n: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected conversions lost per channel when its touches are removed."""
        k = len(self.channels)
        beta = self.fit(n)
        logit = self.x @ beta
        p = _sigmoid(logit)
        out = np.zeros(k)
        np.add.at(out, self.creator, n * p)
        later = self.x[:, k:]
        drop = p[:, None] - _sigmoid(logit[:, None] - beta[None, k:] * later)
        drop[np.arange(len(p)), self.creator] = 0.0  # the creator already lost the whole lead
        out += (n[:, None] * drop).sum(axis=0)
        return np.clip(out, 0.0, None)


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-x))


def removal_shares(
    counts: Mapping[CellKey, int],
    replicates: int = 200,
    level: float = 0.9,
    seed: int = 0,
) -> Shares:
    """Removal-effect shares of the journeys in ``counts`` (cell -> number of leads).

    Parameters
    ----------
    counts
        How many leads fell in each (creating channel, later channels, converted) cell.
    replicates, level, seed
        Bootstrap resamples of the leads (0: no intervals), the intervals' coverage,
        the resampling's seed.

    Examples
    --------
    ``ads`` reaches half the leads and changes nothing; ``webinar`` doubles the odds:

    >>> cells = {("search", (), True): 20, ("search", (), False): 80,
    ...          ("search", ("ads",), True): 20, ("search", ("ads",), False): 80,
    ...          ("search", ("webinar",), True): 33, ("search", ("webinar",), False): 67}
    >>> r = removal_shares(cells, replicates=0)
    >>> {c: round(v, 2) for c, v in r.shares.items()}
    {'ads': 0.0, 'search': 0.85, 'webinar': 0.15}
    """
    check_level(level)
    keys = sorted(
        k for k, v in counts.items() if v > 0
    )  # sorted: resamples repeat whatever the order
    if not any(k[2] for k in keys):
        return empty(level)
    design = _Design(keys)
    n = np.array([counts[k] for k in keys], dtype=np.float64)
    return bootstrap(design.channels, n, design.removal, replicates, level, seed)
