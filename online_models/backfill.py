"""Training the stream's models from history: lead rows with known outcomes.

Each row is a lead as the lead topic carries it (channel, campaign_id,
pages_viewed, company_size, …; missing fields are allowed), with a label column
and optionally a revenue column (the won deal's amount) and engagement counts
in ``eng_<touchpoint type>`` columns. Rows become features with the same
:func:`online_models.features.lead_features` the score agent uses, so the stream
continues learning from the backfilled models.

Rows are ordered by time; the latest share is held out for validation. Every
model of the bundle (champion and challengers) is trained on the history: a model
that can solve on a whole history at once (``learn_many``, the ``newton`` kind) does
so, the others learn it by :func:`online_models.evaluation.backfill` (several passes,
the first in time order). Each is then scored on the held-out rows while frozen: those are the
validation metrics. Finally the held-out rows are learned too, once, in time order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from online_models.bundle import ModelBundle
from online_models.evaluation import backfill, history_size
from online_models.features import lead_features
from online_models.labels import labels
from online_models.prequential import ClassificationMetrics
from online_models.tables import labelled, require_columns, time_ordered


@dataclass(frozen=True)
class BackfillResult:
    """What a backfill did: rows used and each model's validation metrics."""

    history_rows: int
    validation_rows: int
    positives: int
    revenues: int
    validation: dict[str, dict[str, Any]]
    seconds: float
    #: Rows left out for having no label or no time.
    left_out: int = 0


def lead_rows(frame: pd.DataFrame) -> list[dict[str, float]]:
    """Features of each row, as the score agent computes them for a lead event.

    >>> f = pd.DataFrame({"channel": ["email", None], "pages_viewed": [3, None], "eng_call": [2, 0]})
    >>> xs = lead_rows(f)
    >>> xs[0]["channel=email"], xs[0]["pages_viewed"], round(xs[0]["eng_call"], 3), "channel=None" in xs[1]
    (1.0, 3.0, 1.099, False)
    """
    eng_cols = [c for c in frame.columns if str(c).startswith("eng_")]
    out = []
    for row in frame.to_dict("records"):
        clean = {str(k): v for k, v in row.items() if not _missing(v)}
        engagement = {c.removeprefix("eng_"): float(clean.pop(c)) for c in eng_cols if c in clean}
        out.append(lead_features(clean, engagement))
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def train(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    label: str,
    time_col: str,
    revenue: str | None = None,
    passes: int = 3,
    validation: float = 0.2,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> BackfillResult:
    """Train every model of ``bundle`` on ``frame``; see the module docstring.

    ``progress`` is called with counts of examples learned (``passes × history +
    validation rows`` in all).
    """
    started = time.perf_counter()
    require_columns(frame, (label, time_col, *([revenue] if revenue else [])), "data")
    given = len(frame)
    frame, _ = labelled(frame, label)
    frame = time_ordered(frame, time_col)
    ys = labels(frame[label].tolist(), label)
    amounts = frame[revenue].tolist() if revenue else [None] * len(frame)
    xs = lead_rows(frame.drop(columns=[c for c in (label, time_col, revenue) if c]))
    split = history_size(len(frame), validation)
    for i, c in enumerate(bundle.candidates.values()):
        learn_many = getattr(c.model, "learn_many", None)
        if learn_many is not None:
            learn_many(xs[:split], ys[:split])
            if progress is not None and i == 0:
                progress(passes * split)
        else:
            backfill(c.model, xs[:split], ys[:split], passes, seed + i,
                     progress if i == 0 else None)  # fmt: skip
    reports = {}
    for name, c in bundle.candidates.items():
        held = ClassificationMetrics(max(2, len(xs) - split), c.metrics.threshold)
        for x, y in zip(xs[split:], ys[split:], strict=True):
            held.update(bool(y), c.model.predict_proba_one(x)[True])
        reports[name] = held.report("overall")
    for x, y in zip(xs[split:], ys[split:], strict=True):
        for c in bundle.candidates.values():
            c.model.learn_one(x, bool(y))
    if progress is not None:
        progress(len(xs) - split)
    deals = 0
    for x, y, amount in zip(xs, ys, amounts, strict=True):
        if y and not _missing(amount) and float(amount) > 0:
            bundle.learn_revenue(x, float(amount))
            deals += 1
    bundle.examples += len(xs)
    bundle.positives += sum(ys)
    bundle.origin = "backfill"
    return BackfillResult(split, len(xs) - split, sum(ys), deals, reports,
                          time.perf_counter() - started, given - len(xs))  # fmt: skip


def validation_rows(bundle: ModelBundle, result: BackfillResult, at: Any) -> list[dict[str, Any]]:
    """``model_metrics`` rows (scope ``backfill``) of the validation, for the published version."""
    from online_models.records import metric_row

    return [
        metric_row(name, "champion" if name == bundle.champion else "challenger",
                   bundle.version, "backfill", at, values)
        for name, values in result.validation.items()
    ]  # fmt: skip
