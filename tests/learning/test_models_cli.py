"""`leadstream models`: promote and roll back, with a running learner and without one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cli.models import change_champion
from tests.learning._rig import as_messages
from tests.learning.test_learner_records import examples

pytestmark = pytest.mark.integration


async def test_a_running_learner_applies_the_command_and_records_it(rig: Any) -> None:
    r = rig(challengers=("hoeffding",), promote_min_examples=100000)
    pipeline = r.pipeline()
    await pipeline.learn(as_messages(examples(400, seed=3)))
    await pipeline.publish()  # the learner beats its heart at every snapshot

    async def learner_tick() -> None:
        for _ in range(50):
            await asyncio.sleep(0.1)
            await pipeline.publish()

    ticking = asyncio.create_task(learner_tick())
    done = await change_champion(r.settings, "promote", "hoeffding", "cli:test", wait=10)
    assert done["by"] == "learner" and done["record"]["to_model"] == "hoeffding"
    with pytest.raises(ValueError, match="no model named 'forest'"):
        await change_champion(r.settings, "promote", "forest", "cli:test", wait=10)
    back = await change_champion(r.settings, "rollback", None, "cli:test", wait=10)
    ticking.cancel()
    assert back["record"]["action"] == "rollback" and back["record"]["to_model"] == "logistic"
    assert pipeline.learning is not None and pipeline.learning.champion == "logistic"
    # The scorers see each change as a new version.
    assert await pipeline.refresh_model() and pipeline.model.champion == "logistic"
    db = r.settings.clickhouse.database
    rows = r.ch.query(
        f"SELECT action, from_model, to_model, actor FROM {db}.model_promotions FINAL ORDER BY at"
    ).result_rows
    assert [tuple(x) for x in rows] == [
        ("promote", "logistic", "hoeffding", "cli:test"),
        ("rollback", "hoeffding", "logistic", "cli:test"),
    ]


async def test_without_a_learner_the_command_publishes_itself(
    rig: Any, tmp_path: Path, redis_url: str
) -> None:
    r = rig(challengers=("hoeffding",))
    pipeline = r.pipeline()
    await pipeline.learn(as_messages(examples(300, seed=4)))
    await pipeline.publish()
    await r.redis.delete(f"{r.settings.redis.key_prefix}:model:learner")  # the learner is gone
    before = await pipeline.store.latest_version()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")} | {
        "LEADSTREAM_REDIS__URL": redis_url,
        "LEADSTREAM_REDIS__KEY_PREFIX": r.settings.redis.key_prefix,
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(tmp_path / "cli-chdb"),
        "LEADSTREAM_LOG_LEVEL": "warning",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "models", *args], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    done = cli("promote", "hoeffding")
    assert done.returncode == 0, done.stderr
    assert "logistic → hoeffding" in done.stdout
    from typer.testing import CliRunner

    from cli.models import models_app

    # The command runs its own event loop: give it a thread of its own.
    shown = await asyncio.to_thread(
        CliRunner().invoke, models_app, ["list", "--json"], obj=r.settings
    )
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.stdout)
    assert listed["champion"] == "hoeffding" and listed["version"] == before + 1
    assert {m["model"]: m["role"] for m in listed["models"]} == {
        "hoeffding": "champion", "logistic": "challenger"}  # fmt: skip
    # A learner that starts now continues from the promoted champion.
    restarted = r.pipeline()
    await restarted.learn(as_messages(examples(10, seed=5)))
    assert restarted.learning is not None and restarted.learning.champion == "hoeffding"


async def test_the_list_at_80_columns_keeps_every_name_whole_and_says_what_auc_means(
    rig: Any,
) -> None:
    long_name = "logistic:optimizer=sgd,learning_rate=0.01"
    r = rig(challengers=(long_name, "hoeffding"), promote_min_examples=100000)
    pipeline = r.pipeline()
    await pipeline.learn(as_messages(examples(300, seed=6)))
    await pipeline.publish()
    from typer.testing import CliRunner

    from cli.models import models_app

    shown = await asyncio.to_thread(
        CliRunner().invoke, models_app, ["list"], obj=r.settings, env={"COLUMNS": "80"}
    )
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, shown.stdout
    # Each name whole on one line, as `models promote NAME` needs it.
    for name in ("logistic", "hoeffding", long_name):
        assert any(line.split()[:1] == [name] for line in lines if line.strip()), name
    said = " ".join(shown.stdout.split())
    assert "test-then-train" in said and "0.5 is chance" in said
    assert "Scores published so far: ROC AUC" in said and "cold-start" in said
    listed = await asyncio.to_thread(
        CliRunner().invoke, models_app, ["list", "--json"], obj=r.settings
    )
    published = json.loads(listed.stdout)["published_scores"]
    assert published["overall"]["examples"] == 300
