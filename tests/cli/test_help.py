"""Every command and sub-command of `leadstream` answers ``--help`` (walked from the tree)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from cli.main import app


# Typer 0.22+ carries its own copy of click (``typer._click``), so the tree is walked by
# shape (a group has ``commands``), not by isinstance against the click package.
def _paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _paths(sub, (*path, name))
    return found


_ROOT = typer.main.get_command(app)
_ALL = _paths(_ROOT)


def test_the_tree_has_every_documented_command() -> None:
    top = {p[0] for p in _ALL if len(p) == 1}
    assert {"demo", "services", "worker", "generate", "backfill", "evaluate", "serve",
            "report", "scheduler", "bench", "forget", "models", "insights"} <= top  # fmt: skip
    assert ("services", "up") in _ALL and ("bench", "scoring") in _ALL
    assert len(_ALL) > 30


@pytest.mark.parametrize("path", _ALL, ids=lambda p: " ".join(p) or "leadstream")
def test_help_works(path: tuple[str, ...]) -> None:
    # A wide terminal, so option names are not folded and can be checked below.
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Usage:" in result.output
    assert "Traceback" not in result.output
    for param in _command(path).params:
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            assert param.opts[0] in result.output, f"{param.opts[0]} missing from {path} --help"


def _command(path: tuple[str, ...]) -> Any:
    command: Any = _ROOT
    for name in path:
        command = command.commands[name]
    return command


def test_no_help_text_is_read_as_markup() -> None:
    # Rich reads "[word]" in help texts as a style tag: it either vanishes from the help
    # or, unmatched ("[/CAMPAIGN]"), crashes it. Brackets meant literally are escaped "\\[".
    unescaped = [
        (path, tag)
        for path in _ALL
        for text in _texts(_command(path))
        for tag in re.findall(r"(?<!\\)\[[^\]]*\]", text)
    ]
    assert unescaped == []


def _texts(command: Any) -> list[str]:
    return [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
