"""`leadstream demo`, small: quiet by default, and a summary that reads its own numbers.

The demo starts its own broker and Redis (children of the process), so it needs only
the binaries `make demo` installs; it runs in a folder of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_demo_is_quiet_and_says_where_to_look(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "120",
            "LEADSTREAM_KAFKA__DATA_DIR": str(tmp_path / "faust")}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--leads", "1500", "--days", "30",
         "--folder", str(tmp_path / "demo"), "--rate", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    said = " ".join(out.stdout.split())
    # Quiet: no JSON log line on the terminal; they are all in the log file.
    terminal = out.stdout.splitlines() + out.stderr.splitlines()
    assert not [line for line in terminal if line.lstrip().startswith('{"')]
    log = tmp_path / "demo" / "demo.log"
    records = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert any(r["event"] == "event.rejected" for r in records)
    assert f"Log lines (JSON): {log}" in said
    # A normal start warns about nothing (topics are created, at info).
    warned = [r for r in records if r["level"] in ("warning", "error", "critical")
              and r["event"].startswith(("broker.", "clickhouse."))]  # fmt: skip
    assert warned == []
    assert any(r["event"] == "broker.topics_created" and r["level"] == "info" for r in records)
    # The dashboard's address comes again with the summary; both AUCs are named and read.
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/ closed with the run", said)
    assert re.search(r"Scores published at arrival, ranked against outcomes: ROC AUC [\d.]+", said)
    assert re.search(r"The champion model \(\w+\), scored on each labelled lead before learning"
                     r" it: ROC AUC [\d.]+", said)  # fmt: skip
    assert "0.5 is chance" in said and said.rstrip().endswith("Nothing is left running.")
