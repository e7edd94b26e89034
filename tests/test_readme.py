"""The README's settings table is the one the settings model produces."""

from __future__ import annotations

import re
from pathlib import Path

from config.envnames import settings_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_settings_table_matches_the_model() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- settings-table:[^>]*-->\n(.*?)\n<!-- /settings-table -->", text, re.S)
    assert match, "README.md lost its settings-table markers"
    assert match[1].strip() == settings_markdown().strip(), (
        "README settings table is stale: regenerate it with `python -m config.envnames`"
    )


def test_readme_names_the_two_commands_and_ci_calls_one_of_them() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
