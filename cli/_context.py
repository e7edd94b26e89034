"""Access to the one Settings object that the root command stores in the Typer context."""

from __future__ import annotations

import typer

from config.settings import Settings, load_settings


def settings_from(ctx: typer.Context) -> Settings:
    """The Settings built by `leadstream --config …`, or fresh ones if a sub-app runs alone.

    Commands call this instead of reading the environment themselves, so the
    settings are built once per invocation (STYLE.md §6).
    """
    obj = ctx.find_object(Settings)
    if obj is None:
        obj = load_settings()
        ctx.obj = obj
    return obj
