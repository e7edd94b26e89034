"""Rows the learner stores: model metrics per snapshot, promotions, and drifts as anomalies.

Pure: from a bundle (or a record) and a timestamp to dicts keyed by the columns of
ClickHouse's ``model_metrics``, ``model_promotions`` and ``anomalies`` tables.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from online_models.bundle import DriftEvent, ModelBundle
from online_models.prequential import Scope

SCOPES: tuple[Scope, ...] = ("rolling", "overall")
#: The revenue model's name in ``model_metrics``.
REVENUE_MODEL = "revenue"


def metric_rows(
    bundle: ModelBundle, recorded_at: datetime, scopes: tuple[str, ...] = SCOPES
) -> list[dict[str, Any]]:
    """One ``model_metrics`` row per model and scope, for the bundle's current version.

    Examples
    --------
    >>> b = ModelBundle.create("logistic", ("logistic:optimizer=sgd",))
    >>> for i in range(50):
    ...     _ = b.learn_one({"x": float(i % 5)}, i % 5 > 2, 0.5)
    >>> rows = metric_rows(b, datetime(2026, 1, 1, tzinfo=UTC))
    >>> sorted((r["model_name"], r["role"], r["scope"]) for r in rows)[:2]
    [('logistic', 'champion', 'overall'), ('logistic', 'champion', 'rolling')]
    >>> len(rows), rows[0]["examples"]
    (4, 50)
    """
    rows = []
    for name, c in bundle.candidates.items():
        role = "champion" if name == bundle.champion else "challenger"
        for scope in scopes:
            values = c.metrics.report(scope)  # type: ignore[arg-type]  # SCOPES are Scope values
            rows.append(metric_row(name, role, bundle.version, scope, recorded_at, values))
    if bundle.revenue_metrics.examples:
        for scope in scopes:
            values = bundle.revenue_metrics.report(scope)  # type: ignore[arg-type]  # as above
            rows.append(metric_row(REVENUE_MODEL, "champion", bundle.version, scope, recorded_at, values))
    return rows


def metric_row(
    name: str, role: str, version: int, scope: str, at: datetime, values: dict[str, Any]
) -> dict[str, Any]:
    return {
        **values,
        "model_name": name,
        "role": role,
        "model_version": version,
        "scope": scope,
        "recorded_at": at,
        "calibration": orjson.dumps(values["calibration"]).decode(),
    }


def promotion_row(record: dict[str, Any]) -> dict[str, Any]:
    """A ``model_promotions`` row from a bundle's promotion record."""
    return {
        **record,
        "at": datetime.fromtimestamp(record["at"], tz=UTC),
        "to_version": record["to_version"] or 0,
        "evidence": orjson.dumps(
            {**(record["evidence"] or {}), "learner_examples": record.get("examples")}
        ).decode(),
    }


def drift_row(event: DriftEvent, detected_at: datetime) -> dict[str, Any]:
    """An ``anomalies`` row (kind ``model_drift``, dimension ``model``) for a detected drift.

    The id is a hash of the model and the learner's example count at detection, so a
    replayed detection is one row.
    """
    series = f"model={event.model}/prediction_error"
    anomaly_id = hashlib.sha256(f"model_drift|{series}|{event.example}".encode()).hexdigest()[:32]
    return {
        "anomaly_id": anomaly_id, "kind": "model_drift", "series": series,
        "dimension": "model", "dimension_value": event.model, "metric": "brier_error",
        "window_start": detected_at, "window_end": detected_at,
        "value": event.error_recent, "expected": event.error_before,
        "expected_low": 0.0, "expected_high": event.error_before,
        "severity": "warning", "direction": "up" if event.error_recent >= event.error_before else "down",
        "opportunity": False,
        "description": (
            f"the champion {event.model}'s prediction error changed at learner example "
            f"{event.example} (Page-Hinkley on its excess log loss); a fresh challenger "
            f"{event.challenger} learns from here"
        ),
        "detected_at": detected_at,
    }  # fmt: skip
