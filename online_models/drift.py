"""Concept drift on the champion's prediction error."""

from __future__ import annotations

from river import drift


class DriftMonitor:
    """A one-sided Page-Hinkley test on the champion's excess Brier error.

    The signal is ``(y − p)² − p(1 − p)``: the squared error minus what a calibrated
    model expects at that score. Its mean is zero while the model is right, whatever
    the mix of positives and negatives reaching the learner (labels arrive late, and
    positives sooner than negatives), and turns positive when the relation between
    features and outcome changes. Page-Hinkley accumulates the excess above its
    running mean minus a tolerance ``delta`` and fires when the sum passes
    ``threshold``; only increases of the error count.

    Parameters
    ----------
    delta
        Tolerated increase of the mean excess error per example.
    threshold
        Page-Hinkley's λ: a larger one means fewer false alarms and later detection.
    grace
        Examples learned before drift is looked for (the error falls as a new model learns).

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> m = DriftMonitor(grace=100)
    >>> fired = [i for i in range(4000) if m.update(rng.random() < (0.1 if i < 2000 else 0.4), 0.1)]
    >>> 2000 <= fired[0] < 2300
    True
    """

    def __init__(self, delta: float = 0.01, threshold: float = 25.0, grace: int = 1000) -> None:
        self.delta = delta
        self.threshold = threshold
        self.grace = grace
        self._test = self._new()
        self.seen = 0
        self.detections: list[int] = []

    def _new(self) -> drift.PageHinkley:
        return drift.PageHinkley(
            min_instances=200, delta=self.delta, threshold=self.threshold, mode="up"
        )

    def update(self, y: bool, p: float) -> bool:
        """Add one scored example; True when a drift is detected at this example."""
        self.seen += 1
        self._test.update((p - y) ** 2 - p * (1.0 - p))
        if self._test.drift_detected:
            self._test = self._new()
            if self.seen > self.grace:
                self.detections.append(self.seen)
                return True
        return False

    def reset(self) -> None:
        """Forget the error history (after the model was replaced)."""
        self._test = self._new()
