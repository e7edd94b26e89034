"""The dashboard and JSON API (`leadstream serve`): FastAPI over reporting.queries, cached in Redis."""

from __future__ import annotations

from api.app import create_app
from api.server import build_app, serve_in_thread

__all__ = ["build_app", "create_app", "serve_in_thread"]
