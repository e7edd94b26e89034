"""`leadstream backfill`: history from a file or PostgreSQL trains models the stream continues from."""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis.asyncio as aioredis

from cli.backfill import load_source
from config.settings import Settings
from online_models.bundle import ModelStore
from sinks.clickhouse import connect, migrate
from streaming import synthetic
from streaming.runtime import build_pipeline
from tests.learning._rig import Captured, as_messages
from tests.learning.test_learner_records import examples

pytestmark = pytest.mark.integration


def history(leads: int, seed: int) -> pd.DataFrame:
    """Created leads with their outcome (reached sql) and won revenue, as a CRM export."""
    truths: dict[str, synthetic.LeadTruth] = {}
    rows, won = [], {}
    cfg = synthetic.GeneratorConfig(seed=seed, leads=leads, days=60)
    for e in synthetic.generate(cfg, truth=lambda t: truths.__setitem__(t.lead_id, t)):
        v = e.value
        assert isinstance(v, dict)
        if e.kind == "lead" and v["event_type"] == "lead_created":
            rows.append({k: v.get(k) for k in ("lead_id", "occurred_at", "channel", "campaign_id",
                         "industry", "company_size", "country", "seniority", "pages_viewed",
                         "pricing_page_visits", "email_opens", "email_clicks", "demo_requested")})  # fmt: skip
        elif e.kind == "conversion" and v["stage"] == "won":
            won[v["lead_id"]] = float(v["revenue"])
    frame = pd.DataFrame(rows)
    frame["converted"] = [int(truths[i].converted) for i in frame["lead_id"]]
    frame["won_revenue"] = [won.get(i) for i in frame["lead_id"]]
    return frame.drop(columns=["lead_id"])


async def test_backfill_publishes_models_the_running_learner_continues_from(
    redis_url: str, run_id: str, tmp_path: Path
) -> None:
    prefix = f"bf-{run_id}"
    settings = Settings(
        redis={"url": redis_url, "key_prefix": prefix}, clickhouse={"chdb_path": tmp_path / "ch"},
        models={"challengers": ["logistic:optimizer=sgd,learning_rate=0.01", "newton"],
                "label_policy": "horizon"},  # its examples are the horizon policy's
        kafka={"partitions": 1}, pii_hash_key="backfill-test-key-0123456789",
    )  # fmt: skip
    client = aioredis.from_url(redis_url)
    ch = connect(settings.clickhouse)
    migrate(ch, settings.clickhouse.database)
    learner = build_pipeline(settings, client, ch, Captured())
    await learner.learn(as_messages(examples(50, seed=9)))  # a learner already running
    await learner.publish()
    path = tmp_path / "history.csv"
    history(1500, seed=12).to_csv(path, index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")} | {
        "LEADSTREAM_REDIS__URL": redis_url, "LEADSTREAM_REDIS__KEY_PREFIX": prefix,
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(tmp_path / "cli-ch"),
        "LEADSTREAM_MODELS__CHALLENGERS": '["logistic:optimizer=sgd,learning_rate=0.01", "newton"]',
        "LEADSTREAM_LOG_LEVEL": "warning",
    }  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "backfill", str(path), "--revenue", "won_revenue",
         "--passes", "2", "--validation", "0.25", "--json"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["validation_rows"] == round(out["rows"] * 0.25) and out["revenues"] > 20
    assert set(out["validation"]) == {"logistic", "logistic:optimizer=sgd,learning_rate=0.01", "newton"}
    assert out["validation"]["logistic"]["auc"] > 0.68
    # The newton kind solves the history exactly instead of taking passes: at least as good.
    assert out["validation"]["newton"]["auc"] > out["validation"]["logistic"]["auc"] - 0.01
    published = await ModelStore(client, prefix).load()
    assert published is not None and published.version == out["version"]
    assert published.origin == "backfill" and published.examples == out["rows"]
    assert published.revenue.n_learned == out["revenues"]
    newton = published.candidates["newton"].model
    assert newton.n_learned == out["rows"]  # the history solved, then the validation rows learned
    # The running learner adopts the backfilled models at its next snapshot and learns on.
    assert await learner.publish() is None
    assert learner.learning is not None and learner.learning.examples == out["rows"]
    await learner.learn(as_messages(examples(30, seed=10)))
    assert learner.learning.examples == out["rows"] + 30
    assert learner.learning.candidates["newton"].model.n_learned == out["rows"] + 30
    await client.aclose()
    ch.close()  # one chDB directory per process at a time
    cli_ch = connect(settings.clickhouse.model_copy(update={"chdb_path": tmp_path / "cli-ch"}))
    try:
        rows = cli_ch.query(
            "SELECT model_name, role, examples, auc FROM leadstream.model_metrics FINAL "
            f"WHERE scope = 'backfill' AND model_version = {out['version']}"
        ).result_rows
    finally:
        cli_ch.close()
    assert sorted((m, role, n) for m, role, n, _ in rows) == [
        ("logistic", "champion", out["validation_rows"]),
        ("logistic:optimizer=sgd,learning_rate=0.01", "challenger", out["validation_rows"]),
        ("newton", "challenger", out["validation_rows"]),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server of our own (initdb in a temporary folder), as the postgres user."""
    # Debian keeps initdb and pg_ctl out of PATH, under /usr/lib/postgresql/<version>/bin.
    found = [shutil.which("initdb"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))]
    initdb = next((Path(p) for p in found if p), None)
    if initdb is None or shutil.which("psql") is None:
        pytest.fail("PostgreSQL (initdb, pg_ctl, psql) is needed: scripts/install-system-deps.sh")
    pg_ctl = str(initdb.with_name("pg_ctl"))
    folder = Path(tempfile.mkdtemp(prefix="ls-pg-"))
    shutil.chown(folder, "postgres")
    port = _free_port()
    run = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def call(*args: str) -> None:
        subprocess.run([*run, *args], check=True, capture_output=True, timeout=60)

    call(str(initdb), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres")
    call(pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        call(pg_ctl, "-D", str(folder / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_postgresql_table_and_query_read_through_psql(postgres: str, tmp_path: Path) -> None:
    frame = history(300, seed=13)
    csv = tmp_path / "h.csv"
    frame.to_csv(csv, index=False)
    columns = ", ".join(
        f"{c} {'double precision' if frame[c].dtype.kind in 'if' else 'text'}" for c in frame
    )
    sql = f"CREATE SCHEMA crm; CREATE TABLE crm.leads ({columns});"
    subprocess.run(["psql", postgres, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    with csv.open("rb") as f:
        subprocess.run(["psql", postgres, "-X", "-q", "-c", "COPY crm.leads FROM STDIN WITH (FORMAT csv, HEADER true)"],
                       stdin=f, check=True, capture_output=True, timeout=30)  # fmt: skip
    settings = Settings()
    read = load_source(settings, postgres, "crm.leads", None)
    assert len(read) == len(frame) and read["converted"].sum() == frame["converted"].sum()
    some = load_source(settings, postgres, None, "SELECT * FROM crm.leads WHERE converted = 1;")
    assert len(some) == frame["converted"].sum()
    with pytest.raises(ValueError, match="not a plain"):
        load_source(settings, postgres, "crm.leads; DROP TABLE x", None)
    with pytest.raises(ValueError, match=r"psql failed: .*does not exist"):
        load_source(settings, postgres, "crm.missing", None)


async def test_clickhouse_history_is_the_stored_leads_with_their_outcomes(rig: Any) -> None:
    from tests.learning.test_learner_records import conversion, lead

    r = rig(target_stage="sql")
    pipeline = r.pipeline()
    await pipeline.handle_raw("lead", as_messages([
        lead("w", 0, pages_viewed=5), lead("s", 0), lead("n", 0, pages_viewed=1)]))  # fmt: skip
    await pipeline.handle_raw("conversion", as_messages([
        conversion("w", 3, "sql"), conversion("w", 20, "won", revenue="7000", currency="USD"),
        conversion("s", 4, "sql"), conversion("n", 2, "mql")]))  # fmt: skip
    frame = load_source(r.settings, "clickhouse", None, None, clickhouse=r.ch)
    by = {row["lead_id"]: row for row in frame.to_dict("records")}
    assert {k: by[k]["converted"] for k in by} == {"w": 1, "s": 1, "n": 0}
    assert by["w"]["won_revenue"] == 7000.0 and by["w"]["pages_viewed"] == 5
