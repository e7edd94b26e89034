"""`leadstream report` end to end on the session's chDB store (in-process, typer's runner)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.reports.conftest import PERIOD, Store


@pytest.fixture
def env(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSTREAM_CLICKHOUSE__CHDB_PATH", str(store.settings.clickhouse.chdb_path))
    monkeypatch.setenv("LEADSTREAM_MODELS__HORIZON_DAYS", "30")
    monkeypatch.setenv("LEADSTREAM_LOG_LEVEL", "warning")


def test_report_command_writes_the_chosen_formats(env: None, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "--period", "weekly", "--for", "2026-02-18", "--format", "csv,html",
              "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / PERIOD.key
    names = sorted(p.name for p in folder.iterdir())
    assert f"leadstream-{PERIOD.key}.html" in names and len(names) == 1 + 8  # 8 tables
    with (folder / f"leadstream-{PERIOD.key}-kpis.csv").open() as fh:
        rows = {r["indicator"]: r for r in csv.DictReader(fh)}
    html = (folder / f"leadstream-{PERIOD.key}.html").read_text()
    assert f"{int(rows['New leads']['current']):,} new leads arrived" in html


def _said(output: str) -> str:
    """The error text without rich's box drawing and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_report_command_names_the_fix_for_bad_options(env: None) -> None:
    result = CliRunner().invoke(app, ["report", "--format", "pdf,docx"])
    assert result.exit_code == 2 and "choose from pdf,html,csv,xlsx" in _said(result.output)
    result = CliRunner().invoke(app, ["report", "--period", "daily"])
    assert result.exit_code == 2 and "choose weekly or monthly" in _said(result.output)
