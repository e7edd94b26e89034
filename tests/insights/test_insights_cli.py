"""`leadstream insights segments|importance` on chDB data and a model published in Redis."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from cli.main import app
from online_models.bundle import ModelBundle, ModelStore
from online_models.features import lead_features
from streaming import synthetic
from tests.insights._data import chdb_settings, load_generated

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "chdb"
    load_generated(chdb_settings(path), synthetic.GeneratorConfig(seed=11, leads=4000, days=40))
    return path  # closed again: each command opens and closes it


@pytest.fixture
def env(chdb: Path, redis_url: str, run_id: str) -> Iterator[dict[str, str]]:
    prefix = f"ins-{run_id}"
    bundle = ModelBundle()
    rng = random.Random(1)
    for e in synthetic.generate(synthetic.GeneratorConfig(seed=3, leads=1500, days=20)):
        if e.kind == "lead" and isinstance(e.value, dict):
            p = 0.5 if e.value["demo_requested"] else 0.08
            bundle.scorer.learn_one(lead_features(e.value, {}), rng.random() < p)

    async def publish() -> None:
        client = aioredis.from_url(redis_url)
        await ModelStore(client, prefix).publish(bundle)
        await client.aclose()

    asyncio.run(publish())
    yield {
        "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(chdb),
        "LEADSTREAM_MODELS__HORIZON_DAYS": "30",
        "LEADSTREAM_REDIS__URL": redis_url,
        "LEADSTREAM_REDIS__KEY_PREFIX": prefix,
        "LEADSTREAM_LOG_LEVEL": "warning",
        "COLUMNS": "200",
    }

    async def clean() -> None:  # the store's keys, by name: a SCAN of a shared Redis is slow
        client = aioredis.from_url(redis_url)
        await client.delete(*(f"{prefix}:model:{k}" for k in ("seq", "latest", "1")))
        await client.aclose()

    asyncio.run(clean())


def test_segments_as_json_and_as_a_table(env: dict[str, str]) -> None:
    out = runner.invoke(app, ["insights", "segments", "--json", "--min-support", "50"], env=env)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["target_stage"] == "sql" and report["horizon_days"] == 30
    labels = {" & ".join(f"{f}={v}" for f, v in zip(s["fields"], s["values"], strict=True))
              for s in report["segments"]}  # fmt: skip
    assert "demo_requested=yes" in labels
    assert all(s["q_value"] <= 0.05 for s in report["segments"])
    table = runner.invoke(
        app, ["insights", "segments", "--min-support", "50", "--no-pairs", "--limit", "5"], env=env
    )
    assert table.exit_code == 0, table.output
    assert "base rate" in table.stdout and "demo_requested=yes" in table.stdout
    assert " & " not in table.stdout  # --no-pairs
    better = runner.invoke(
        app, ["insights", "segments", "--json", "--direction", "higher", "--order-by", "lift"],
        env=env,
    )  # fmt: skip
    assert better.exit_code == 0, better.output
    found = json.loads(better.stdout)["segments"]
    assert found and all(s["direction"] == "higher" for s in found)
    lifts = [abs(math.log(s["lift"])) for s in found]
    assert lifts == sorted(lifts, reverse=True)


def test_the_target_stage_setting_changes_the_base_rate(env: dict[str, str]) -> None:
    rates = []
    for stage in ("sql", "won"):
        out = runner.invoke(
            app, ["insights", "segments", "--json", "--no-pairs"],
            env={**env, "LEADSTREAM_MODELS__TARGET_STAGE": stage},
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        rates.append(json.loads(out.stdout)["base_rate"])
    assert rates[1] < rates[0]


def test_importance_of_the_published_model(env: dict[str, str]) -> None:
    out = runner.invoke(app, ["insights", "importance", "--json", "--leads", "500"], env=env)
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)
    assert report["model_version"] == 1 and report["leads"] == 500
    assert report["features"][0]["feature"] == "demo_requested"
    table = runner.invoke(app, ["insights", "importance", "--by-field", "--top", "3"], env=env)
    assert table.exit_code == 0, table.output
    assert "model version 1" in table.stdout and "demo_requested" in table.stdout


def test_errors_name_the_fix(env: dict[str, str], tmp_path: Path) -> None:
    out = runner.invoke(
        app, ["insights", "importance"], env={**env, "LEADSTREAM_REDIS__KEY_PREFIX": "nothing-here"}
    )
    assert out.exit_code == 1 and "no model published" in out.output
    empty = {**env, "LEADSTREAM_CLICKHOUSE__CHDB_PATH": str(tmp_path / "empty")}
    out = runner.invoke(app, ["insights", "segments"], env=empty)
    assert out.exit_code == 1 and "leadstream worker" in out.output
    out = runner.invoke(app, ["insights", "segments", "--field", "colour"], env=env)
    assert out.exit_code == 2 and "unknown segment fields" in out.output


@pytest.mark.parametrize("command", ["segments", "importance"])
def test_help(command: str) -> None:
    out = runner.invoke(app, ["insights", command, "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--json" in out.stdout
