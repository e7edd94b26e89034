"""Fixtures of the reliability tests (the helpers live in ``_live.py``)."""

from __future__ import annotations

from tests.reliability._live import live_pipeline

__all__ = ["live_pipeline"]
