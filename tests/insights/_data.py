"""Generated events loaded into chDB the way the worker writes them: ingested, then inserted."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from config.settings import Settings
from sinks.clickhouse import connect, migrate
from sinks.rows import COLUMNS, TABLE_FOR_KIND, event_row
from streaming import synthetic
from streaming.ingest import Accepted, Ingestor


@dataclass
class Loaded:
    """What was loaded: the clean events by kind, and each lead's hidden propensity."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truth: dict[str, float] = field(default_factory=dict)


def load_generated(
    settings: Settings, cfg: synthetic.GeneratorConfig, noise_levels: int | None = None
) -> Loaded:
    """Ingest every event of ``cfg`` into the chDB of ``settings``.

    With ``noise_levels``, every lead's ``utm_content`` is replaced by one of that many
    values drawn from a generator of its own: a field with no effect by construction.
    Opens and closes its own client: chDB allows one open data directory per process.
    """
    loaded = Loaded()
    key = settings.require_pii_key()
    ingestors = {
        kind: Ingestor(name, kind, settings.pii_fields, key, settings.kafka.max_event_bytes)
        for name, kind in settings.kafka.topics.raw().items()
    }
    noise = random.Random(cfg.seed + 1000)
    now = datetime.now(UTC)
    rows: dict[str, list[list[Any]]] = {}
    events = synthetic.generate(
        cfg, truth=lambda t: loaded.truth.__setitem__(t.lead_id, t.propensity)
    )
    for offset, e in enumerate(events):
        value = e.value
        assert isinstance(value, dict)
        if e.kind == "lead" and noise_levels:
            value = {**value, "utm_content": f"u{noise.randrange(noise_levels)}"}
        result = ingestors[e.kind].ingest(orjson.dumps(value), now, 0, offset)
        assert isinstance(result, Accepted), result
        loaded.events.setdefault(e.kind, []).append(result.event)
        table = TABLE_FOR_KIND[e.kind]
        rows.setdefault(table, []).append(event_row(table, result.event, now))
    client = connect(settings.clickhouse)
    try:
        db = settings.clickhouse.database
        migrate(client, db)
        for table, batch in rows.items():
            client.insert(f"{db}.{table}", batch, column_names=list(COLUMNS[table]))
    finally:
        client.close()
    return loaded


def chdb_settings(path: Path, **models: Any) -> Settings:
    """Settings for a test database in ``path`` (a 30-day horizon unless given)."""
    return Settings(
        clickhouse={"chdb_path": path},
        models={"horizon_days": 30, **models},
        pii_hash_key="insights-test-key-0123456789",
    )


def cohort(
    loaded: Loaded, stages: set[str], horizon_days: float, as_of: datetime | None = None
) -> dict[str, tuple[dict[str, Any], bool]]:
    """The mature leads and whether each converted, computed in Python (no SQL).

    A lead is mature when its creation plus the horizon is no later than ``as_of``
    (default: the latest event); it converted if it reached one of ``stages`` within the horizon.
    """
    horizon = timedelta(days=horizon_days)
    first: dict[str, dict[str, Any]] = {}
    for lead in loaded.events["lead"]:
        seen = first.get(lead["lead_id"])
        if seen is None or lead["occurred_at"] < seen["occurred_at"]:
            first[lead["lead_id"]] = lead
    converted_at: dict[str, datetime] = {}
    for c in loaded.events.get("conversion", []):
        if c["stage"] in stages:
            at = converted_at.get(c["lead_id"])
            converted_at[c["lead_id"]] = (
                c["occurred_at"] if at is None else min(at, c["occurred_at"])
            )
    if as_of is None:
        as_of = max(
            e["occurred_at"] for kind in ("lead", "conversion") for e in loaded.events.get(kind, [])
        )
    out = {}
    for lead_id, lead in first.items():
        if lead["occurred_at"] + horizon <= as_of:
            at = converted_at.get(lead_id)
            out[lead_id] = (lead, at is not None and at <= lead["occurred_at"] + horizon)
    return out
