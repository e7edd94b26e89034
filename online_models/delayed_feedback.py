"""Delayed feedback: how a lead whose outcome is not known yet is learned, and with what weight.

A conversion can take weeks to arrive, a negative is only a fact when the horizon has
passed. Each label policy (``models.label_policy``) decides what the learner learns and
when; the published score always means "converts within the horizon".

``horizon``
    A lead is learned once, with its outcome: a conversion when it arrives, a negative
    when the horizon has passed. During the first horizon the learner sees almost only
    positives, so its scores are too high.
``fake_negative``
    Every lead is learned as a negative when it is scored, a conversion once more as a
    positive. The model learns ``q = p / (1 + p)``; the published score is ``q / (1 - q)``
    (:func:`from_fake_negatives`).
``fnw``
    Fake negatives with importance weights (Ktena et al., RecSys 2019): the lead is
    learned as a negative when scored, with weight ``(1 - p)(1 + p)``, and a conversion
    as a positive with weight ``1 + p``, ``p`` the model's own current estimate. The
    weights undo the bias of the fake negatives, so the model learns ``p`` itself and the
    published score is the model's probability (explanations add up to its logit).
``es_dfm``
    Elapsed-time sampling (Yang et al., AAAI 2021) with the delay distribution learned
    online: a lead converted within the window ``e`` (``models.window_days``) is learned
    as a positive; one not converted by then as a negative; a later conversion as a
    positive once more. The weights use ``p`` and ``F(e)``, the share of a segment's
    conversions that arrive within ``e`` (:class:`DelayModel`): the probability of a
    delayed positive is ``p·(1 - F(e))``, positives weigh ``1 + p·(1 - F)``, negatives
    ``(1 + p·(1 - F))·(1 - p) / (1 - p·F)``. With ``F = 0`` this is ``fnw``.

The learner (:meth:`online_models.bundle.ModelBundle.learn_one`), the offline replay of
``leadstream bench delayed-feedback`` and ``evaluate`` all learn through these functions.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Literal

#: Label policies, ``models.label_policy``.
POLICIES: tuple[str, ...] = ("horizon", "fake_negative", "fnw", "es_dfm")
Policy = Literal["horizon", "fake_negative", "fnw", "es_dfm"]

#: Policies whose learner sees every lead when it is scored (a ``provisional`` example).
PROVISIONAL: frozenset[str] = frozenset({"fake_negative", "fnw", "es_dfm"})

_DAY = 86_400.0
#: Upper edges (days) of the delay histogram's bins; the last bin ends at the horizon.
_EDGES_DAYS: tuple[float, ...] = (
    0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 14.0, 21.0, 30.0, 45.0, 60.0, 90.0, 180.0,
)  # fmt: skip
#: The highest probability a weight is computed with (weights stay finite).
_P_MAX = 1.0 - 1e-6


def fnw_weight(y: bool, p: float) -> float:
    """The importance weight of a fake-negative example under FNW.

    ``p`` is the model's estimate for the lead when the example is learned.

    >>> fnw_weight(True, 0.25), fnw_weight(False, 0.25)
    (1.25, 0.9375)
    """
    return es_dfm_weight(y, p, 0.0)


def es_dfm_weight(y: bool, p: float, f: float) -> float:
    """The importance weight under elapsed-time sampling with window share ``f = F(e)``.

    A positive (in the window, or a delayed one learned again) weighs ``1 + p·(1 - f)``;
    a negative at the window ``(1 + p·(1 - f))·(1 - p) / (1 - p·f)``: the lead is a real
    negative with probability ``(1 - p) / (1 - p·f)``.

    >>> round(es_dfm_weight(True, 0.2, 0.5), 6), round(es_dfm_weight(False, 0.2, 0.5), 6)
    (1.1, 0.977778)
    >>> es_dfm_weight(False, 0.2, 1.0) == 1.0  # every conversion inside the window: no bias
    True
    """
    p = min(max(p, 0.0), _P_MAX)
    delayed = p * (1.0 - f)
    if y:
        return 1.0 + delayed
    return (1.0 + delayed) * (1.0 - p) / (1.0 - p * f)


def from_fake_negatives(q: float) -> float:
    """The conversion probability ``p`` from what a model learned with fake negatives.

    Every lead is learned as a negative when it is scored and a converted one once more
    as a positive, so a model of those examples learns ``q = p / (1 + p)``; ``p = q / (1 -
    q)``, capped below 1. Monotone, so it ranks leads as ``q`` does.

    >>> from_fake_negatives(0.2), from_fake_negatives(1 / 3), from_fake_negatives(0.9)
    (0.25, 0.5, 0.999999)
    """
    return min(q / (1.0 - q), _P_MAX) if q < 1.0 else _P_MAX


def published(policy: str, q: float) -> float:
    """The published probability from the model's ``q`` under ``policy``.

    >>> published("fake_negative", 0.2), published("fnw", 0.2)
    (0.25, 0.2)
    """
    return from_fake_negatives(q) if policy == "fake_negative" else q


def segment_of(x: dict[str, float]) -> str:
    """The delay segment of a lead: its channel indicator (``""`` if none).

    >>> segment_of({"pages_viewed": 3.0, "channel=paid_search": 1.0})
    'channel=paid_search'
    """
    for name in x:
        if name.startswith("channel="):
            return name
    return ""


class DelayModel:
    """The distribution of conversion delays, learned online per segment.

    A histogram of observed delays (creation to conversion, in seconds) per segment
    and overall; ``cdf(segment, t)`` is ``P(delay ≤ t | converts)``, linear within a
    bin, a segment's histogram shrunk towards the overall one with ``prior`` pseudo
    conversions. Delays observed so far are those short enough to have arrived, so
    early in a stream ``F`` is too high by about (mean delay) / (time since the start).

    Parameters
    ----------
    horizon_s
        Conversions later than this are not conversions (the last bin ends here).
    prior
        Pseudo conversions of the overall histogram in each segment's.

    Attributes
    ----------
    n
        Conversions learned.

    Examples
    --------
    >>> d = DelayModel(90 * 86400.0)
    >>> for days in (1, 2, 2, 3, 10):
    ...     d.update("channel=ads", days * 86400.0)
    >>> round(d.cdf("channel=ads", 3 * 86400.0), 2), round(d.cdf("channel=other", 3 * 86400.0), 2)
    (0.8, 0.8)
    >>> d.cdf("channel=ads", 0.0), d.cdf("channel=ads", 90 * 86400.0)
    (0.0, 1.0)
    >>> (d + d).n
    10
    """

    def __init__(self, horizon_s: float, prior: float = 20.0) -> None:
        self.horizon_s = horizon_s
        self.prior = prior
        edges = [e * _DAY for e in _EDGES_DAYS if e * _DAY < horizon_s]
        self._edges: list[float] = [*edges, horizon_s]
        self._counts: dict[str, list[float]] = {}
        self._total: list[float] = [0.0] * len(self._edges)
        self.n = 0

    def update(self, segment: str, delay_s: float) -> None:
        """Learn one conversion's delay."""
        if delay_s > self.horizon_s:
            return
        k = bisect.bisect_left(self._edges, max(0.0, delay_s))
        counts = self._counts.get(segment)
        if counts is None:
            counts = self._counts[segment] = [0.0] * len(self._edges)
        counts[k] += 1.0
        self._total[k] += 1.0
        self.n += 1

    def cdf(self, segment: str, t: float) -> float:
        """``P(delay ≤ t | converts)`` in ``segment`` (0 before any conversion)."""
        if t <= 0:
            return 0.0
        if t >= self.horizon_s:
            return 1.0
        total = sum(self._total)
        if not total:
            return 0.0
        counts = self._counts.get(segment)
        n_seg = sum(counts) if counts else 0.0
        k = bisect.bisect_left(self._edges, t)
        lo = self._edges[k - 1] if k else 0.0
        part = (t - lo) / (self._edges[k] - lo)

        def mass(c: list[float]) -> float:
            return sum(c[:k]) + part * c[k]

        overall = mass(self._total) / total
        if not n_seg or counts is None:
            return overall
        return (mass(counts) + self.prior * overall) / (n_seg + self.prior)

    def __add__(self, other: DelayModel) -> DelayModel:
        if other._edges != self._edges:
            raise ValueError("delay models with different bins cannot be merged")
        out = DelayModel(self.horizon_s, self.prior)
        out._total = [a + b for a, b in zip(self._total, other._total, strict=True)]
        for source in (self, other):
            for segment, counts in source._counts.items():
                mine = out._counts.setdefault(segment, [0.0] * len(out._edges))
                out._counts[segment] = [a + b for a, b in zip(mine, counts, strict=True)]
        out.n = self.n + other.n
        return out

    def report(self, segments: Iterable[str], at_s: float) -> dict[str, float]:
        """``F(at_s)`` per segment, rounded, for logs and metrics."""
        return {s: round(self.cdf(s, at_s), 4) for s in segments}
