"""The model's health over time for :class:`reporting.queries.Analytics`: model metrics,
champion changes and the published scores' quality. A mixin reading through ``_rows``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from reporting import _sql
from reporting._lead_views import _span
from reporting._results import ModelHealth, PublishedScores

if TYPE_CHECKING:
    from reporting.queries import Filters


class ModelViews:
    """The model-health view; mixed into ``Analytics``."""

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        raise NotImplementedError  # Analytics runs the query

    def data_span(self) -> tuple[date, date] | None:
        """The first and last day with leads (event time), or None when there are none."""
        rows = self._rows(_sql.DATA_SPAN, {})
        if not rows or not rows[0][2]:
            return None
        return rows[0][0], rows[0][1]

    def model_health(self, f: Filters, limit: int = 500) -> ModelHealth:
        """Model metrics recorded in the period, newest first, champion changes, and the
        published scores' AUC against the outcomes of the leads scored in the period.

        The learner stamps its metrics (and the scorer its scores) with its own clock, not
        with event time. A
        period that reaches the data's last day therefore also takes what was recorded
        after it: the model as of that day (on replayed or generated history, all of it).
        """
        params = {**_span(f), "limit": limit}
        span = self.data_span()
        if span is not None and f.end >= span[1]:
            params["until"] = _OPEN_END
        cols = ("recorded_at", "model_name", "role", "model_version", "scope", "examples",
                "positives", "auc", "logloss", "brier", "precision", "recall", "f1")  # fmt: skip
        metrics = [dict(zip(cols, r, strict=True)) for r in self._rows(_sql.MODEL_HEALTH, params)]
        pcols = ("at", "action", "from_model", "to_model", "from_version", "to_version", "actor")
        promotions = [dict(zip(pcols, r, strict=True)) for r in self._rows(_sql.PROMOTIONS, params)]
        ((examples, positives, auc),) = self._rows(_sql.PUBLISHED_SCORES, params)
        published = PublishedScores(examples=examples, positives=positives or 0, auc=auc)
        weeks = [_published_week(r) for r in self._rows(_sql.PUBLISHED_QUALITY, _span(f))]
        return ModelHealth(metrics=metrics, promotions=promotions, published=published,
                           published_by_week=weeks)  # fmt: skip


#: "No upper bound" for DateTime64 parameters (its range ends in 2299).
_OPEN_END = datetime(2299, 1, 1, tzinfo=UTC)


def _published_week(r: Sequence[Any]) -> dict[str, Any]:
    """One week of the published scores' quality (``PUBLISHED_QUALITY``), JSON-ready."""
    week, leads, predicted, observed, logloss, auc = r

    def num(v: Any, digits: int = 4) -> float | None:
        return None if v is None or math.isnan(v) else round(float(v), digits)

    return {
        "week": week, "leads": int(leads), "mean_predicted": num(predicted),
        "observed": num(observed), "calibration": round(predicted / observed, 4) if observed else None,
        "logloss": num(logloss, 5), "auc": num(auc),
    }  # fmt: skip
