"""`leadstream bench attribution`: accuracy against a known truth, and speed at a million touches.

Accuracy: on each seed the generator makes multi-channel journeys whose channels
have known incremental effects (``GeneratorConfig(journeys=True)``); the truth
share of a channel is its removal effect, normalised (see
``streaming/_synthetic_journeys.py``). Every model attributes the ``sql``
conversions of all the generated leads; its channel shares are compared with the
truth by mean absolute error and Spearman rank correlation (``direct`` included,
its truth is 0).

Speed: one dataset with at least a million touchpoints in chDB; the time to
compute every model (rule-based SQL, journey cells, both data-driven models with
their bootstrap intervals) for the whole period, and for its last 30 days.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from scipy import stats

from reporting.attribution import MODELS, Attribution
from sinks.clickhouse import migrate
from streaming.synthetic import DIRECT, ChannelTruth, Emitted, GeneratorConfig, generate

# Columns written per table: what attribution reads (the rest take their defaults).
_COLUMNS = {
    "leads": ("event_id", "event_type", "lead_id", "occurred_at", "ingested_at", "channel",
              "campaign_id"),
    "touchpoints": ("event_id", "event_type", "lead_id", "occurred_at", "ingested_at",
                    "channel", "campaign_id", "attributes"),
    "conversions": ("event_id", "lead_id", "stage", "occurred_at", "ingested_at", "revenue",
                    "currency", "attributes"),
    "spend": ("event_id", "campaign_id", "channel", "date", "amount", "currency", "occurred_at",
              "ingested_at"),
}  # fmt: skip
_TABLE = {"lead": "leads", "touchpoint": "touchpoints", "conversion": "conversions",
          "spend": "spend"}  # fmt: skip
_BATCH = 200_000


def load(client: Client, database: str, events: Iterable[Emitted]) -> dict[str, int]:
    """Insert the generated events' attribution columns; returns rows per table."""
    migrate(client, database)
    now = datetime.now(UTC)
    rows: dict[str, list[list[Any]]] = {t: [] for t in _COLUMNS}
    counts = dict.fromkeys(_COLUMNS, 0)
    for e in events:
        v = e.value
        assert isinstance(v, dict)
        table = _TABLE[e.kind]
        rec = {**v, "occurred_at": datetime.fromisoformat(v["occurred_at"]), "ingested_at": now,
               "attributes": ""}  # fmt: skip
        if table == "spend":
            rec["date"] = date.fromisoformat(v["date"])
            rec["amount"] = float(v["amount"])
        elif table == "conversions" and "revenue" in v:
            rec["revenue"] = float(v["revenue"])
        rows[table].append([rec.get(c) for c in _COLUMNS[table]])
        if len(rows[table]) >= _BATCH:
            _flush(client, database, table, rows, counts)
    for table in rows:
        _flush(client, database, table, rows, counts)
    return counts


def _flush(
    client: Client, db: str, table: str, rows: dict[str, list[list[Any]]], counts: dict[str, int]
) -> None:
    if rows[table]:
        client.insert(f"{db}.{table}", rows[table], column_names=list(_COLUMNS[table]))
        counts[table] += len(rows[table])
        rows[table] = []


def _grade(shares: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    names = sorted(set(truth) | set(shares) | {DIRECT})
    a = [shares.get(c, 0.0) for c in names]
    b = [truth.get(c, 0.0) for c in names]
    mae = sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(names)
    rho = float(stats.spearmanr(a, b).statistic)
    return {"mae": round(mae, 4), "spearman": round(rho, 3)}


def accuracy_run(client: Client, seed: int, leads: int, days: int) -> dict[str, Any]:
    """One seed: every model's sql shares against the generator's truth."""
    cfg = GeneratorConfig(seed=seed, leads=leads, days=days, journeys=True)
    truth = ChannelTruth()
    database = f"attribution_bench_{seed}"
    counts = load(client, database, generate(cfg, channel_truth=truth))
    end = cfg.start + timedelta(days=days + 150)
    t0 = time.perf_counter()
    table = Attribution(client, database).table(cfg.start, end, lookback_days=365)
    seconds = time.perf_counter() - t0
    truth_shares = truth.shares()
    models: dict[str, Any] = {}
    for model in MODELS:
        rows = table.view(model).channels
        total = sum(r.sql for r in rows)
        shares = {r.key: r.sql / total for r in rows}
        models[model] = {**_grade(shares, truth_shares),
                         "shares": {c: round(s, 4) for c, s in sorted(shares.items())}}  # fmt: skip
    dd = table.view("data_driven").intervals["sql"]
    covered = sum(1 for r in dd if r.low is not None and r.high is not None
                  and r.low <= truth_shares.get(r.channel, 0.0) <= r.high)  # fmt: skip
    client.command(f"DROP DATABASE IF EXISTS {database}")
    return {
        "seed": seed, "leads": leads, "rows": counts, "seconds_all_models": round(seconds, 2),
        "truth_shares": {c: round(s, 4) for c, s in truth_shares.items()},
        "models": models,
        "data_driven_intervals_covering_truth": f"{covered}/{len(dd)}",
        "data_driven_beats_first_and_last": all(
            models["data_driven"]["mae"] < models[m]["mae"]
            and models["data_driven"]["spearman"] > models[m]["spearman"]
            for m in ("first_touch", "last_touch")
        ),
    }  # fmt: skip


def speed_run(client: Client, touchpoints: int, days: int) -> dict[str, Any]:
    """Every model over a dataset with at least ``touchpoints`` touchpoints."""
    leads = int(touchpoints / 6.0) + 1  # about 6.3 touchpoints per lead in journeys
    cfg = GeneratorConfig(seed=42, leads=leads, days=days, journeys=True)
    database = "attribution_bench_speed"
    t0 = time.perf_counter()
    counts = load(client, database, generate(cfg))
    loaded = time.perf_counter() - t0
    attribution = Attribution(client, database)
    end = cfg.start + timedelta(days=days - 1)
    timings = {}
    for name, start, replicates in (("whole_period", cfg.start, 0),
                                    ("last_30_days", end - timedelta(days=29), 0),
                                    ("whole_period_with_bootstrap", cfg.start, 200),
                                    ("last_30_days_with_bootstrap", end - timedelta(days=29), 200),
                                    ):  # fmt: skip
        best = float("inf")
        for _ in range(3):
            t1 = time.perf_counter()
            attribution.table(start, end, lookback_days=90, replicates=replicates)
            best = min(best, time.perf_counter() - t1)
        timings[name] = round(best, 2)
    client.command(f"DROP DATABASE IF EXISTS {database}")
    return {"rows": counts, "generate_and_load_seconds": round(loaded, 1),
            "seconds_every_model": timings, "bootstrap_replicates": 200,
            "note": "best of 3; every model = the six rule-based models in one SQL pass, the "
            "journey cells, both data-driven fits; _with_bootstrap adds 200 resamples of leads "
            "for each data-driven model and stage"}  # fmt: skip


def run(
    seeds: Iterable[int], leads: int, days: int, touchpoints: int, say: Callable[[str], None]
) -> dict[str, Any]:
    """The whole benchmark in one temporary chDB folder."""
    with tempfile.TemporaryDirectory() as folder:
        client = clickhouse_connect.get_client(interface="chdb", path=str(Path(folder) / "chdb"))
        try:
            runs = []
            for seed in seeds:
                say(f"seed {seed}: {leads} leads")
                runs.append(accuracy_run(client, seed, leads, days))
            say(f"speed: {touchpoints} touchpoints")
            speed = speed_run(client, touchpoints, 120) if touchpoints else {}
        finally:
            client.close()
    limit = 5.0
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "truth": "share of channel c = removal effect of c / sum of removal effects; removal "
        "effect = drop in expected sql conversions if c's touches were removed (a lead c created "
        "is lost entirely; a lead c reached later loses c's logit effect)",
        "runs": runs,
        "mean_over_seeds": {
            m: {
                k: round(sum(r["models"][m][k] for r in runs) / len(runs), 4)
                for k in ("mae", "spearman")
            }
            for m in MODELS
        }
        if runs
        else {},
        "speed": speed,
        "targets": {
            "data_driven_beats_first_and_last_touch_on_every_seed": all(
                r["data_driven_beats_first_and_last"] for r in runs
            ),
            f"every_model_1M_touchpoints_under_{limit:g}s": bool(speed)
            and speed["rows"]["touchpoints"] >= 1_000_000
            and speed["seconds_every_model"]["whole_period"] <= limit,
        },
    }
