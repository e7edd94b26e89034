"""Concept drift on the champion's prediction error."""

from __future__ import annotations

import math
from typing import Any

from river import drift

#: The conversions' test's defaults, also given to snapshots from before it existed.
CONVERSIONS_DELTA, CONVERSIONS_THRESHOLD = 0.2, 25.0

_EPS = 0.01  # scores are clipped to [ε, 1 − ε] so one confident miss counts at most ~3.6


class DriftMonitor:
    """Two one-sided Page-Hinkley tests on the champion's excess log loss.

    The signal is the log loss minus what a calibrated model expects at that score,
    ``−[y log p + (1 − y) log(1 − p)] − H(p)`` with ``H`` the binary entropy. Its mean
    is zero while the model is right, whatever the mix of positives and negatives
    reaching the learner, and turns positive when the relation between features and
    outcome changes. Page-Hinkley accumulates the excess above its running mean minus a
    tolerance ``delta`` and fires when the sum passes ``threshold``; only increases count.

    One test sees every labelled example; the other sees the conversions alone. Labels
    arrive late, and not alike: a conversion becomes an example within days, a lead
    without one only when its horizon ends. So right after a drift the examples of
    drifted leads are nearly all early conversions, and they are diluted among older
    leads' negatives: on the drift benchmark's streams only ~7.5% of the 2,000 examples
    after the first drifted one are of drifted leads, but among the conversions their
    share climbs within a few hundred examples. The conversions' test therefore fires
    first, on a steady stream of its own (a drift makes the old model's scores of the
    new converters too low, which log loss weighs most). The test over every example
    stays for drifts that show in the negatives (leads the model rates highly that stop
    converting). Either firing is a detection; both tests then start again. Neither
    test is fed during ``grace``: while a new model learns, its error falls steeply and
    would leave the conversions' test primed.

    The defaults were chosen on the drift benchmark's recorded (label, score) streams
    of seeds 7 and 11, both drift kinds and drift-free (see ``cli/_bench_drift.py``):
    no false alarm for any conversions' test with ``delta`` ≥ 0.15 and ``threshold`` ≥
    30, or ``delta`` 0.2 and ``threshold`` 25; lower values raised false alarms. The
    test over every example raised one on a drift-free stream at ``threshold`` 80 and
    none at 100.

    Parameters
    ----------
    delta, threshold
        Page-Hinkley's tolerance and λ for the test over every example.
    grace
        Examples learned before drift is looked for (the error falls as a new model learns).
    conversions_delta, conversions_threshold
        The same for the test over conversions only.

    Examples
    --------
    Leads that a model rated at 10% turn out far likelier to convert (every score is
    the same, so only the test over every example can see it):

    >>> import random
    >>> rng = random.Random(1)
    >>> m = DriftMonitor(grace=100)
    >>> fired = [i for i in range(4000) if m.update(rng.random() < (0.1 if i < 2000 else 0.4), 0.1)]
    >>> 2000 <= fired[0] < 2300
    True
    """

    def __init__(
        self,
        delta: float = 0.05,
        threshold: float = 100.0,
        grace: int = 1000,
        conversions_delta: float = CONVERSIONS_DELTA,
        conversions_threshold: float = CONVERSIONS_THRESHOLD,
    ) -> None:
        self.delta = delta
        self.threshold = threshold
        self.grace = grace
        self.conversions_delta = conversions_delta
        self.conversions_threshold = conversions_threshold
        self.seen = 0
        self.detections: list[int] = []
        self.reset()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Snapshots pickled before the conversions' test existed get it, fresh.
        self.__dict__.update(state)
        if "_conversions" not in state:
            self.conversions_delta = CONVERSIONS_DELTA
            self.conversions_threshold = CONVERSIONS_THRESHOLD
            self.reset()

    def _new(self, delta: float, threshold: float) -> drift.PageHinkley:
        return drift.PageHinkley(min_instances=200, delta=delta, threshold=threshold, mode="up")

    def update(self, y: bool, p: float) -> bool:
        """Add one scored example; True when a drift is detected at this example."""
        self.seen += 1
        if self.seen <= self.grace:
            return False
        x = excess_log_loss(y, p)
        self._test.update(x)
        fired = self._test.drift_detected
        if y:
            self._conversions.update(x)
            fired = fired or self._conversions.drift_detected
        if fired:
            self.reset()
            self.detections.append(self.seen)
        return fired

    def reset(self) -> None:
        """Forget the error history (after the model was replaced)."""
        self._test = self._new(self.delta, self.threshold)
        self._conversions = self._new(self.conversions_delta, self.conversions_threshold)


def excess_log_loss(y: bool, p: float) -> float:
    """Log loss of score ``p`` on outcome ``y`` minus its expectation if ``p`` is right.

    >>> round(excess_log_loss(True, 0.5), 6), round(excess_log_loss(False, 0.5), 6)
    (0.0, 0.0)
    >>> excess_log_loss(True, 0.05) > 2 > 0 > excess_log_loss(False, 0.05)
    True
    """
    q = min(max(p, _EPS), 1.0 - _EPS)
    entropy = -(q * math.log(q) + (1.0 - q) * math.log(1.0 - q))
    return -math.log(q if y else 1.0 - q) - entropy
