"""Pure row building for the ClickHouse tables: event dicts in, column lists out.

Each table names its columns once; a field of the event that is not a column
goes into the table's ``attributes`` JSON column, so extra fields are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import orjson

Row = list[Any]


class TableSink(Protocol):
    """Where one table's rows go: ClickHouse itself, or a topic the store's owner inserts from.

    ``write`` returns once the rows are durable (inserted, or acknowledged by the broker).
    """

    table: str

    async def write(self, rows: Sequence[Row]) -> None: ...


COLUMNS: dict[str, tuple[str, ...]] = {
    "leads": (
        "event_id", "event_type", "lead_id", "occurred_at", "ingested_at", "channel", "source",
        "campaign_id", "email_domain", "email_is_free", "email_hash", "phone_hash", "company",
        "industry", "company_size", "country", "seniority", "pages_viewed",
        "pricing_page_visits", "email_opens", "email_clicks", "demo_requested", "attributes",
    ),
    "touchpoints": (
        "event_id", "event_type", "lead_id", "occurred_at", "ingested_at", "channel",
        "campaign_id", "attributes",
    ),
    "conversions": (
        "event_id", "lead_id", "stage", "occurred_at", "ingested_at", "revenue", "currency",
        "attributes",
    ),
    "spend": (
        "event_id", "campaign_id", "channel", "date", "amount", "currency", "occurred_at",
        "ingested_at",
    ),
    "scored_leads": (
        "event_id", "lead_id", "occurred_at", "scored_at", "channel", "campaign_id", "score",
        "band", "expected_value", "model_version", "reasons",
    ),
    "rejected_events": (
        "source_topic", "source_partition", "source_offset", "payload_sha256", "reason",
        "reason_code", "payload", "received_at",
    ),
    "training_examples": (
        "lead_id", "label", "score", "model_version", "scored_at", "labelled_at", "revenue",
    ),
    "anomalies": (
        "anomaly_id", "kind", "series", "dimension", "dimension_value", "metric", "window_start",
        "window_end", "value", "expected", "expected_low", "expected_high", "severity",
        "direction", "opportunity", "description", "detected_at",
    ),
    "model_metrics": (
        "model_name", "role", "model_version", "scope", "recorded_at", "examples", "positives",
        "auc", "logloss", "brier", "threshold", "precision", "recall", "f1", "calibration",
        "rmse", "mae", "r2",
    ),
    "model_promotions": (
        "promotion_id", "at", "action", "from_model", "to_model", "from_version", "to_version",
        "actor", "evidence",
    ),
}  # fmt: skip

#: The table each kind of raw event lands in.
TABLE_FOR_KIND: dict[str, str] = {
    "lead": "leads",
    "touchpoint": "touchpoints",
    "conversion": "conversions",
    "spend": "spend",
}

# Fields that never go to `attributes`: the columns, and the schema version.
_KNOWN: dict[str, frozenset[str]] = {
    table: frozenset(columns) | {"schema_version"} for table, columns in COLUMNS.items()
}

# Defaults for columns that are not Nullable when the event lacks the field.
_DEFAULTS: dict[str, Any] = {"campaign_id": "", "email_is_free": False}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def event_row(table: str, event: Mapping[str, Any], ingested_at: datetime) -> Row:
    """One row for a clean event; fields that are not columns go to ``attributes``.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 5, tzinfo=timezone.utc)
    >>> row = event_row("touchpoints", {"event_id": "e1", "event_type": "page_view",
    ...     "lead_id": "L1", "occurred_at": t, "schema_version": 1, "url": "/pricing"}, t)
    >>> row[-1]
    '{"url":"/pricing"}'
    """
    columns = COLUMNS[table]
    known = _KNOWN[table]
    row: Row = []
    for name in columns:
        if name == "ingested_at":
            row.append(ingested_at)
        elif name == "attributes":
            extra = {k: v for k, v in event.items() if k not in known and v is not None}
            row.append(orjson.dumps(extra, default=_json_default).decode())
        else:
            value = event.get(name)
            row.append(_DEFAULTS.get(name) if value is None and name in _DEFAULTS else value)
    return row


def mapping_row(table: str, record: Mapping[str, Any]) -> Row:
    """A row from a record whose keys are exactly the table's columns."""
    return [record.get(name) for name in COLUMNS[table]]
