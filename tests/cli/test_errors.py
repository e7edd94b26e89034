"""Errors meant for people: one or two lines naming what, where and the fix, and a status.

Each test runs the real command in a fresh folder (no stray ``.env``) and checks the
whole of standard error, so a traceback or a wall of library output fails it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "Jq3v0yD9x0Fq4bS8YtM2kQ-test-only"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSTREAM_")}
    env.update(
        PYTHONPATH=str(ROOT), COLUMNS="200",
        LEADSTREAM_CLICKHOUSE__CHDB_PATH=str(tmp / "chdb"),
        LEADSTREAM_KAFKA__DATA_DIR=str(tmp / "faust"), LEADSTREAM_METRICS__PORT="0",
    )  # fmt: skip
    env.update(extra)
    return env


def _run(tmp: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=tmp, env=_env(tmp, **env),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _lines(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in out.stderr.splitlines() if line.strip()]


def test_unreachable_broker_and_redis_say_so_and_how_to_start_them(tmp_path: Path) -> None:
    broker, redis = _closed_port(), _closed_port()
    out = _run(
        tmp_path, ["worker"], LEADSTREAM_PII_HASH_KEY=KEY,
        LEADSTREAM_KAFKA__BOOTSTRAP=f"kafka://127.0.0.1:{broker}",
        LEADSTREAM_REDIS__URL=f"redis://:hunter2@127.0.0.1:{redis}/0",
    )  # fmt: skip
    assert out.returncode == 69
    assert _lines(out) == [
        f"error: no Kafka broker answers at 127.0.0.1:{broker} (LEADSTREAM_KAFKA__BOOTSTRAP):"
        " is it running? `leadstream services up` starts a local one",
        f"error: Redis does not answer at redis://:***@127.0.0.1:{redis}/0"
        " (LEADSTREAM_REDIS__URL): is it running? `leadstream services up` starts a local one",
    ]
    models = _run(tmp_path, ["models", "list"],
                  LEADSTREAM_REDIS__URL=f"redis://127.0.0.1:{redis}/0")  # fmt: skip
    assert models.returncode == 69 and len(_lines(models)) == 1
    assert "Redis does not answer at" in models.stderr
    gen = _run(tmp_path, ["generate", "--leads", "5", "--days", "1"],
               LEADSTREAM_KAFKA__BOOTSTRAP=f"kafka://127.0.0.1:{broker}")  # fmt: skip
    assert gen.returncode == 69 and len(_lines(gen)) == 1
    assert "no Kafka broker answers" in gen.stderr


def test_a_bad_setting_names_its_variable_source_and_expectation(tmp_path: Path) -> None:
    out = _run(tmp_path, ["models", "list"], LEADSTREAM_KAFKA__PARTITIONS="four")
    assert out.returncode == 2
    assert _lines(out) == [
        "error: LEADSTREAM_KAFKA__PARTITIONS='four' (from the environment): expected a valid"
        " integer, unable to parse string as an integer"
    ]
    (tmp_path / "bad.toml").write_text('[kafka]\npartitions = 0\n')
    out = _run(tmp_path, ["--config", "bad.toml", "models", "list"])
    assert out.returncode == 2
    assert _lines(out) == [
        "error: LEADSTREAM_KAFKA__PARTITIONS=0 (from bad.toml): expected greater than or equal"
        " to 1"
    ]
    (tmp_path / ".env").write_text("LEADSTREAM_LOG_LEVEL=loud\n")
    out = _run(tmp_path, ["models", "list"])
    assert out.returncode == 2
    assert _lines(out) == [
        f"error: LEADSTREAM_LOG_LEVEL='loud' (from {tmp_path / '.env'}): expected 'debug',"
        " 'info', 'warning' or 'error'"
    ]


def test_a_malformed_csv_names_the_file_the_line_and_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("id,ts,converted,visits\n1,2026-01-01,1,3\n2,2026-01-02,0,4,5\n")
    out = _run(tmp_path, ["evaluate", str(path), "--label", "converted", "--time", "ts"])
    assert out.returncode == 65
    assert _lines(out) == [
        f"error: {path} line 3: 5 values where the header has 4 (separator ','); quote values"
        " that contain the separator"
    ]


def test_a_label_that_is_a_count_asks_for_positive_or_a_threshold(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    rows = [f"{i},2026-01-{1 + i % 28:02d},{i % 21},{i % 7}" for i in range(400)]
    path.write_text("id,ts,visits,pages\n" + "\n".join(rows) + "\n")
    out = _run(tmp_path, ["evaluate", str(path), "--label", "visits", "--time", "ts", "--json"])
    assert out.returncode == 2 and out.stdout == ""
    assert _lines(out) == [
        "error: label column 'visits' has 21 different numbers (0 to 20), not two: name the"
        " value that counts as a conversion with --positive VALUE, or a threshold with"
        " --positive '>=N'"
    ]
    ok = _run(tmp_path, ["evaluate", str(path), "--label", "visits", "--time", "ts", "--json",
                         "--positive", ">=10"])  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert '"positives": ' in ok.stdout


def test_placeholder_secrets_are_refused_and_dotenv_is_not_read_for_secrets(
    tmp_path: Path,
) -> None:
    placeholder = "change-me-pii-hash-key-at-least-16-characters"  # from .env.example
    assert placeholder in (ROOT / ".env.example").read_text()
    out = _run(tmp_path, ["worker"], LEADSTREAM_PII_HASH_KEY=placeholder)
    assert out.returncode == 2
    assert _lines(out) == [
        "error: LEADSTREAM_PII_HASH_KEY is the public placeholder from .env.example; make one"
        " with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` and export it"
    ]
    # `cp .env.example .env`: the key there is not read (secrets: environment or secrets dir).
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    out = _run(tmp_path, ["worker"])
    assert out.returncode == 2
    assert len(_lines(out)) == 1
    assert "no PII hashing key" in out.stderr and "never .env" in out.stderr
    token = _run(tmp_path, ["serve"], LEADSTREAM_API__TOKEN="change-me-dashboard-api-token")
    assert token.returncode == 2
    assert _lines(token)[0].startswith("error: LEADSTREAM_API__TOKEN is the public placeholder")


def test_a_store_held_by_another_process_says_which_and_what_to_do(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from config.settings import load_settings\nfrom sinks.clickhouse import connect\n"
         "c = connect(load_settings().clickhouse)\nprint('open', flush=True)\ntime.sleep(60)"],
        cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        for args in (["report", "--format", "csv"], ["serve"], ["insights", "segments"]):
            out = _run(tmp_path, args, LEADSTREAM_API__AUTH_ENABLED="false")
            assert out.returncode == 69, (args, out.stderr)
            assert _lines(out) == [
                f"error: the store {tmp_path / 'chdb'} is in use by another process that does"
                " not share it (a `leadstream serve`, `report` or `demo`?): chDB opens a data"
                " directory in one process only, and only a running `leadstream worker` shares"
                " it. Stop that process (start the worker first), or use a ClickHouse server"
                " (LEADSTREAM_CLICKHOUSE__DSN)"
            ], args
        assert time.monotonic() - started < 90
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("bad", ["kafka://127.0.0.1:notaport"])
def test_a_broker_address_without_a_port_is_unreachable_not_a_crash(
    tmp_path: Path, bad: str
) -> None:
    out = _run(tmp_path, ["generate", "--leads", "5", "--days", "1"],
               LEADSTREAM_KAFKA__BOOTSTRAP=bad)  # fmt: skip
    assert out.returncode == 69 and len(_lines(out)) == 1
