"""`leadstream evaluate --json` run as a user runs it, in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def cli_evaluate(path: Path, time_col: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``evaluate PATH --label label --time TIME_COL --json EXTRA…``; the caller checks the exit."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "evaluate", str(path), "--label", "label",
         "--time", time_col, "--json", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
