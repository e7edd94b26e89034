"""Budget allocation: maximise expected return under guardrails, sampling the posterior.

Return of a campaign at spend ``s`` is ``K · (s / ref)^b`` (leads times conversion
rate times value per conversion), concave for ``b < 1``; the best split of a fixed
budget equalises marginal returns, found by bisection on the common marginal
(a Lagrange multiplier) within each campaign's allowed range.

Decisions follow Thompson sampling: the allocation is optimal for draws from the
posterior rather than for its mean, so a campaign whose response is uncertain
gets tried at other spend levels now and then (exploration), while one that is
known to do well keeps its money (exploitation). Averaging the optima of a few
draws keeps the moves smooth; guardrails cap how much changes in one period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reporting.recommend._model import CampaignPosterior

__all__ = ["SAMPLES", "Guardrails", "allocate", "bounds", "optimise"]

#: Posterior draws whose optimal allocations are averaged into one decision
#: (1 is plain Thompson sampling; more makes the moves smoother).
SAMPLES = 16


@dataclass(frozen=True)
class Guardrails:
    """Limits on how much a recommendation may change in one period.

    Parameters
    ----------
    max_shift
        Share of the total budget that may move between campaigns per period.
    max_increase
        A campaign's spend may grow by at most this share of its current spend.
    max_decrease
        A campaign's spend may shrink by at most this share of its current spend.
    floor
        No campaign is cut below this share of the budget (one already below it is
        not cut), so every campaign keeps producing evidence.

    Examples
    --------
    >>> Guardrails(max_shift=1.5)
    Traceback (most recent call last):
    ...
    ValueError: max_shift must be in (0, 1], got 1.5
    """

    max_shift: float = 0.2
    max_increase: float = 1.0
    max_decrease: float = 0.5
    floor: float = 0.005

    def __post_init__(self) -> None:
        for name in ("max_shift", "max_decrease"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        if self.max_increase <= 0 or not 0.0 <= self.floor < 1.0:
            raise ValueError("max_increase must be > 0 and floor in [0, 1)")


def bounds(current: np.ndarray, budget: float, g: Guardrails) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest spend each campaign may get next period.

    >>> lo, hi = bounds(np.array([100.0, 2.0]), 102.0, Guardrails(floor=0.02))
    >>> lo.tolist(), hi.tolist()
    ([50.0, 2.0], [200.0, 4.0])
    """
    floor = np.minimum(current, g.floor * budget)
    lo = np.maximum(current * (1.0 - g.max_decrease), floor)
    hi = current * (1.0 + g.max_increase)
    return lo, hi


def optimise(
    k: np.ndarray, b: np.ndarray, ref: np.ndarray, budget: float, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Spend per campaign maximising ``sum(k * (s / ref) ** b)`` with ``sum(s) = budget``.

    Each ``s`` stays in ``[lo, hi]``; the budget must fit the bounds.

    Examples
    --------
    Equal curves split evenly; a better one gets more, within its bound:

    >>> one = np.ones(2)
    >>> optimise(one, one * 0.5, one, 2.0, one * 0, one * 5).round(3).tolist()
    [1.0, 1.0]
    >>> optimise(np.array([2.0, 1.0]), one * 0.5, one, 2.0, one * 0, np.array([1.5, 5])).round(3).tolist()
    [1.5, 0.5]
    """
    if not lo.sum() <= budget + 1e-9 or not budget <= hi.sum() + 1e-9:
        raise ValueError(f"budget {budget:.2f} outside the bounds [{lo.sum():.2f}, {hi.sum():.2f}]")
    k = np.maximum(k, 1e-12)
    inv = 1.0 / (1.0 - b)

    def spend(log_lam: float) -> np.ndarray:
        # marginal k b s^(b-1) / ref^b = lam  =>  s = ref (k b / (lam ref))^(1/(1-b))
        s: np.ndarray = ref * np.exp(np.clip(inv * (np.log(k * b / ref) - log_lam), -200.0, 200.0))
        clipped: np.ndarray = np.clip(s, lo, hi)
        return clipped

    low, high = -60.0, 60.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        if spend(mid).sum() > budget:
            low = mid
        else:
            high = mid
    s = spend(high)
    # Close the last rounding gap on campaigns not at a bound.
    free = (s > lo + 1e-9) & (s < hi - 1e-9)
    gap = budget - s.sum()
    if free.any():
        s[free] += gap * s[free] / s[free].sum()
    out: np.ndarray = np.clip(s, lo, hi)
    return out


def allocate(
    posteriors: Sequence[CampaignPosterior],
    current: Mapping[str, float],
    guardrails: Guardrails,
    rng: np.random.Generator,
    samples: int = SAMPLES,
) -> dict[str, float]:
    """Next period's spend per campaign: the mean of the optima of ``samples`` posterior draws.

    Campaigns without a posterior keep their spend; the total stays the same.
    """
    known = [p for p in posteriors if p.campaign_id in current]
    ids = [p.campaign_id for p in known]
    cur = np.array([current[c] for c in ids])
    budget = float(cur.sum())
    out = dict(current)
    if len(known) < 2 or budget <= 0:
        return out
    lo, hi = bounds(cur, budget, guardrails)
    ref = np.array([p.ref_spend for p in known])
    draws = [p.draw(rng, samples) for p in known]
    total = np.zeros(len(known))
    for j in range(samples):
        k = np.array([d[0][j] * d[2][j] * d[3][j] for d in draws])
        b = np.array([d[1][j] for d in draws])
        total += optimise(k, b, ref, budget, lo, hi)
    target = total / samples
    moved = 0.5 * np.abs(target - cur).sum()
    limit = guardrails.max_shift * budget
    if moved > limit:  # the objective is concave: part of the way is still an improvement
        target = cur + (target - cur) * (limit / moved)
    out.update({c: float(s) for c, s in zip(ids, target, strict=True)})
    return out
