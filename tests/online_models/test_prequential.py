"""Prequential metrics against scikit-learn, on scores with ties, for both scopes."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from online_models.prequential import ClassificationMetrics, RegressionMetrics


def _stream(n: int, seed: int) -> tuple[list[bool], list[float]]:
    rng = random.Random(seed)
    y = [rng.random() < 0.2 for _ in range(n)]
    p = [round(min(0.99, max(0.01, 0.2 + 0.3 * yi + rng.gauss(0, 0.2))), 3) for yi in y]
    return y, p


@pytest.mark.parametrize("scope", ["overall", "rolling"])
def test_classification_metrics_agree_with_scikit_learn(scope: str) -> None:
    y, p = _stream(6000, 1)
    m = ClassificationMetrics(window=2500, threshold=0.4)
    for yi, pi in zip(y, p, strict=True):
        m.update(yi, pi)
    if scope == "rolling":
        y, p = y[-2500:], p[-2500:]
    r = m.report(scope)  # type: ignore[arg-type]
    predicted = [pi >= 0.4 for pi in p]
    assert r["examples"] == len(y) and r["positives"] == sum(y)
    # Rolling AUC is exact; overall AUC bins scores by 1e-4 (these have 3 decimals: exact too).
    assert r["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert r["logloss"] == pytest.approx(log_loss(y, p), rel=1e-9)
    assert r["brier"] == pytest.approx(brier_score_loss(y, p), rel=1e-9)
    assert r["precision"] == pytest.approx(precision_score(y, predicted))
    assert r["recall"] == pytest.approx(recall_score(y, predicted))
    assert r["f1"] == pytest.approx(f1_score(y, predicted))
    bins = r["calibration"]
    assert sum(b["n"] for b in bins) == len(y)
    arr_p, arr_y = np.array(p), np.array(y)
    for b in bins:
        inside = (arr_p >= b["bin_low"]) & (arr_p < b["bin_high"])
        assert b["n"] == inside.sum()
        assert b["positive_rate"] == pytest.approx(arr_y[inside].mean())
        assert b["mean_score"] == pytest.approx(arr_p[inside].mean())
    json.dumps(r)  # the row is JSON-ready


def test_overall_auc_with_continuous_scores_is_within_binning_error() -> None:
    rng = random.Random(2)
    y = [rng.random() < 0.3 for _ in range(20000)]
    p = [1 / (1 + np.exp(-(rng.gauss(0, 1) + 1.2 * yi))) for yi in y]
    m = ClassificationMetrics(window=100)
    for yi, pi in zip(y, p, strict=True):
        m.update(yi, float(pi))
    assert m.report("overall")["auc"] == pytest.approx(roc_auc_score(y, p), abs=2e-4)


def test_regression_metrics_agree_with_scikit_learn() -> None:
    rng = random.Random(3)
    y = [rng.lognormvariate(9, 0.5) for _ in range(3000)]
    yhat = [v * rng.lognormvariate(0, 0.3) for v in y]
    m = RegressionMetrics(window=1000)
    for a, b in zip(y, yhat, strict=True):
        m.update(a, b)
    for scope, ys, fs in (("overall", y, yhat), ("rolling", y[-1000:], yhat[-1000:])):
        r = m.report(scope)  # type: ignore[arg-type]
        assert r["rmse"] == pytest.approx(mean_squared_error(ys, fs) ** 0.5, rel=1e-9)
        assert r["mae"] == pytest.approx(mean_absolute_error(ys, fs), rel=1e-9)
        assert r["r2"] == pytest.approx(r2_score(ys, fs), rel=1e-6)


def test_empty_metrics_are_null_not_errors() -> None:
    r = ClassificationMetrics().report("rolling")
    assert r["examples"] == 0 and r["auc"] is None and r["logloss"] is None
    assert RegressionMetrics().report("overall")["rmse"] is None
