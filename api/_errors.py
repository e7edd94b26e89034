"""One error format for every 4xx and 5xx answer of the API, and its OpenAPI description.

Every error is ``{"detail": "<what is wrong>", "errors": [{"loc": [...], "msg": ...,
"type": ...}]}``: ``detail`` is one readable sentence, ``errors`` lists the offending
parameters (empty when the error is not about one). FastAPI's own 422 (a list under
``detail``) and Starlette's HTTP errors are rewritten to it, so a client parses one
shape whatever refused the request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorItem(BaseModel):
    """One refused parameter: where it is, what is wrong, the kind of error."""

    loc: list[str | int] = Field(description="where: ['query', 'start'], ['path', 'campaign']")
    msg: str
    type: str


class Error(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="what is wrong, in one sentence")
    errors: list[ErrorItem] = Field(
        default_factory=list, description="the parameters at fault, if the error is about them"
    )


class ApiError(Exception):
    """An error answer: status code, sentence and the parameters at fault."""

    def __init__(
        self, status: int, detail: str, errors: Sequence[ErrorItem] = (), headers: dict[str, str] | None = None
    ) -> None:  # fmt: skip
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers


def error_response(
    status: int, detail: str, errors: Sequence[ErrorItem] = (), headers: dict[str, str] | None = None
) -> JSONResponse:  # fmt: skip
    """The JSON answer of an error.

    >>> error_response(400, "unknown query parameter(s) ['colour']").body
    b'{"detail":"unknown query parameter(s) [\\'colour\\']","errors":[]}'
    """
    body = Error(detail=detail, errors=list(errors)).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


def _items(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[ErrorItem]:
    return [
        ErrorItem(loc=[*prefix, *e.get("loc", ())], msg=str(e.get("msg", "")), type=str(e.get("type", "")))
        for e in errors
    ]  # fmt: skip


def _sentence(items: Sequence[ErrorItem]) -> str:
    """``query.start: …; query.end: …`` (a model-level error has no location).

    >>> _sentence([ErrorItem(loc=["query", "band"], msg="Input should be 'A'", type="literal_error")])
    "query.band: Input should be 'A'"
    """
    return (
        "; ".join((".".join(str(p) for p in i.loc) + ": " if i.loc else "") + i.msg for i in items)
        or "invalid request"
    )


def validation_error(exc: ValidationError) -> ApiError:
    """A 422 for a pydantic error raised while building the request's filters.

    The messages of model validators read ``Value error, …``; the prefix is dropped.
    """
    items = _items(exc.errors(include_url=False), ("query",))
    for item in items:
        item.msg = item.msg.removeprefix("Value error, ")
        if item.loc == ["query"]:
            item.loc = []
    return ApiError(422, _sentence(items), items)


def install(app: FastAPI, patterns: Mapping[str, str]) -> None:
    """Answer every error raised inside the app in the one format.

    ``patterns`` names the regular expressions of parameters: a value that does not
    match one is told what was expected in words (``a day YYYY-MM-DD …``).
    """

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.detail, exc.errors, exc.headers)

    async def request_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = _items(exc.errors())
        for item, raw in zip(items, exc.errors(), strict=True):
            expected = patterns.get(str((raw.get("ctx") or {}).get("pattern")))
            if expected is not None:
                item.msg = f"{raw.get('input')!r} is not {expected}"
        return error_response(422, _sentence(items), items)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _described(text: str) -> dict[str, Any]:
    return {"model": Error, "description": text}


#: The error answers every view can give, for the OpenAPI document.
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described(
        "A query parameter that no operation of this API takes, or one given more than once "
        "(a parameter another operation takes is ignored)"
    ),
    401: _described("No valid credentials (bearer token, HTTP basic or the session cookie)"),
    414: _described("The URL (path and query) is longer than 2,048 bytes"),
    422: _described("A parameter is malformed or out of range, or the parameters contradict"),
    500: _described("An unexpected failure (a bug): the answer says no more than that"),
}
