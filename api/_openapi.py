"""The OpenAPI document as the server behaves: its security schemes and this server's limits.

FastAPI derives most of the document from the routes. What it cannot see is added
here: the credentials the guard middleware checks (declared only when
authentication is on, and only the kinds that are configured), and ``limit`` of
the lead drill-downs capped at this server's ``api.max_rows``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api._security import COOKIE, Authenticator

_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "LEADSTREAM_API__TOKEN"},
    "basic": {
        "type": "http", "scheme": "basic",
        "description": "LEADSTREAM_API__USERNAME and LEADSTREAM_API__PASSWORD",
    },
    "session": {
        "type": "apiKey", "in": "cookie", "name": COOKIE,
        "description": "set by /login?token=… for browsers",
    },
}  # fmt: skip


def document(app: FastAPI, auth: Authenticator, max_rows: int) -> None:
    """Replace ``app.openapi`` with one that adds the security schemes and limits."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        schemes = {name: _SCHEMES[name] for name in auth.schemes()}
        if schemes:
            schema.setdefault("components", {})["securitySchemes"] = schemes
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if schemes:
                    operation["security"] = [{name: []} for name in schemes]
                else:
                    operation["responses"].pop("401", None)
                for parameter in operation.get("parameters", []):
                    parameter["schema"] = _not_null(parameter["schema"])
                    if parameter["name"] == "limit" and path.endswith("/leads"):
                        parameter["schema"]["maximum"] = max_rows
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without its ``null`` branch.

    A query string cannot carry a null: the parameter is absent instead, which
    ``required: false`` already says.

    >>> _not_null({"anyOf": [{"type": "string", "pattern": "^a$"}, {"type": "null"}], "title": "X"})
    {'type': 'string', 'pattern': '^a$', 'title': 'X'}
    >>> _not_null({"type": "integer"})
    {'type': 'integer'}
    """
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**kept[0], **rest}
