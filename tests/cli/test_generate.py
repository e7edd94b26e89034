"""`leadstream generate`: into Kafka and into files, the same events by seed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from streaming import synthetic
from tests.integration._worker import WorkerRun


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "generate", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_jsonl_and_truth_files_are_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        out = _run(["--leads", "60", "--days", "20", "--jsonl", str(tmp_path / f"{name}.jsonl"),
                    "--truth", str(tmp_path / f"{name}.csv")])  # fmt: skip
        assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    lines = [orjson.loads(line) for line in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    assert {e["kind"] for e in lines} >= {"lead", "touchpoint", "spend"}
    truth = (tmp_path / "a.csv").read_text().splitlines()
    assert "propensity" in truth[0] and len(truth) == 61


@pytest.mark.integration
def test_events_reach_the_raw_topics(
    broker_url: str, redis_url: str, run_id: str, tmp_path: Path
) -> None:
    run = WorkerRun(run_id=run_id, broker_url=broker_url, redis_url=redis_url, tmp=tmp_path)
    env = {**os.environ, **run.env()}
    out = _run(["--leads", "40", "--days", "10"], env)
    assert out.returncode == 0, out.stderr
    sent_leads = int(out.stderr.split(" lead ")[1].split(",")[0])  # "sent N events: …, lead K, …"
    leads = run.read_topic(run.topics.leads, expect=sent_leads, timeout=20)
    assert len(leads) == sent_leads
    assert 36 <= len({e["lead_id"] for e in leads}) <= 44  # about the number asked for


def test_an_injected_volume_drop_empties_the_channel_for_its_days(tmp_path: Path) -> None:
    start = synthetic.GeneratorConfig().start
    days = {(start + timedelta(days=d)).isoformat() for d in (10, 11)}

    def paid_search_leads_on_days(args: list[str], name: str) -> int:
        path = tmp_path / f"{name}.jsonl"
        out = _run(["--leads", "3000", "--days", "20", "--jsonl", str(path), *args])
        assert out.returncode == 0, out.stderr
        events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        return sum(
            1
            for e in events
            if e["kind"] == "lead"
            and isinstance(e["value"], dict)
            and e["value"].get("channel") == "paid_search"
            and e["value"].get("event_type") == "lead_created"
            and str(e["value"].get("occurred_at", ""))[:10] in days
        )

    normal = paid_search_leads_on_days([], "normal")
    dropped = paid_search_leads_on_days(["--anomaly", "volume_drop:paid_search:10:2:0.0"], "drop")
    assert normal > 20 and dropped == 0


def test_a_malformed_anomaly_names_the_expected_form(tmp_path: Path) -> None:
    out = _run(["--anomaly", "volume_drop:paid_search", "--jsonl", str(tmp_path / "x.jsonl")])
    assert out.returncode == 2
    flat = " ".join(out.stderr.replace("│", " ").split())
    assert "KIND:CHANNEL[/CAMPAIGN]:START_DAY:DAYS:FACTOR" in flat
