"""Calibration of published scores by week: mean predicted against observed, per cohort."""

from __future__ import annotations

import math
from typing import Any

_WEEK = 7 * 86_400.0
_EPS = 1e-15


class WeeklyCalibration:
    """Published scores and outcomes by week of the leads' creation.

    Per week: leads labelled, the sum of their published scores, conversions and the
    summed log loss. The calibration ratio is mean predicted over observed (1 is
    calibrated). Only the latest ``keep`` weeks are kept.

    Parameters
    ----------
    keep
        Weeks kept.

    Examples
    --------
    >>> c = WeeklyCalibration()
    >>> for i in range(10):
    ...     c.update(86_400.0 * i, i % 5 == 0, 0.25)
    >>> [(w["week_start"], w["leads"], w["ratio"]) for w in c.weeks()]
    [(0.0, 7, 0.875), (604800.0, 3, None)]
    >>> c.overall()["ratio"]  # 2.5 predicted for 2 conversions
    1.25
    """

    def __init__(self, keep: int = 26) -> None:
        self.keep = keep
        self._weeks: dict[int, list[float]] = {}
        self.latest = 0.0  # latest creation time seen

    def update(self, created_at: float, y: bool, p: float) -> None:
        """Count one labelled lead created at ``created_at`` (epoch seconds) scored ``p``."""
        self.latest = max(self.latest, created_at)
        week = int(created_at // _WEEK)
        acc = self._weeks.get(week)
        if acc is None:
            acc = self._weeks[week] = [0.0, 0.0, 0.0, 0.0]
            if len(self._weeks) > self.keep:
                del self._weeks[min(self._weeks)]
        q = min(max(p, _EPS), 1.0 - _EPS)
        acc[0] += 1.0
        acc[1] += p
        acc[2] += y
        acc[3] -= math.log(q) if y else math.log(1.0 - q)

    def weeks(self, horizon_s: float | None = None) -> list[dict[str, Any]]:
        """One record per week, oldest first.

        With ``horizon_s`` each record says whether the week is ``complete``: its leads'
        horizon has passed by the latest creation time seen, so every outcome is in
        (before that, negatives are missing and ``observed`` is too high).
        """
        latest = self.latest
        out = []
        for w, a in sorted(self._weeks.items()):
            record = _record(float(w * _WEEK), a)
            if horizon_s is not None:
                record["complete"] = (w + 1) * _WEEK + horizon_s <= latest
            out.append(record)
        return out

    def last_complete(self, horizon_s: float) -> dict[str, Any] | None:
        """The latest week whose leads' outcomes are all in, if any."""
        done = [w for w in self.weeks(horizon_s) if w["complete"]]
        return done[-1] if done else None

    def overall(self) -> dict[str, Any]:
        """The kept weeks together."""
        total = [sum(a[i] for a in self._weeks.values()) for i in range(4)]
        return _record(None, total)


def _record(week_start: float | None, a: list[float]) -> dict[str, Any]:
    n, predicted, observed, loss = a
    return {
        "week_start": week_start,
        "leads": int(n),
        "mean_predicted": predicted / n if n else None,
        "observed": observed / n if n else None,
        "ratio": predicted / observed if observed else None,
        "logloss": loss / n if n else None,
    }
