"""Query and path parameters of the views: strict days, the filters and their limits.

A day is ``YYYY-MM-DD`` of a real calendar day from :data:`FIRST_DAY` to
:data:`LAST_DAY`, and nothing else: no Unix times (``0.0``), no basic format
(``20260101``), no year 999 or 9999. The rule is the OpenAPI ``pattern`` of the
parameter, so a client generated from the schema cannot send a day the server
refuses, and the server checks it again on parsing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import ValidationError

from api._errors import ApiError, ErrorItem, validation_error
from reporting.queries import FIRST_DAY, LAST_DAY, MAX_DAYS, Band, Filters

#: Values of channel, campaign and segment filters: letters, digits and ``_.:+- ``.
VALUE = r"^[A-Za-z0-9_.:+\- ]{1,80}$"
#: A calendar day from 2000-01-01 to 2099-12-31 (leap days of leap years only).
DAY = (
    r"^(20[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))|20([02468][048]|[13579][26])-02-29)$"
)
DAY_WORDS = f"a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}"
#: Default range: the last 30 days of data.
DEFAULT_DAYS = 30
_RANGE = (
    f"Days are YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY}. The range needs start <= end and "
    f"spans at most {MAX_DAYS} days; otherwise the answer is 422."
)

Value = Annotated[str | None, Query(max_length=80, pattern=VALUE)]
PathValue = Annotated[str, Path(max_length=80, pattern=VALUE)]


def _day(description: str) -> Any:
    """The ``Query`` of a day parameter: its pattern, ``format: date`` and the range rules."""
    return Query(
        pattern=DAY, json_schema_extra={"format": "date"}, description=f"{description}. {_RANGE}"
    )


def parse_day(value: str, name: str) -> date:
    """A day in the accepted range, or a 422 :class:`api._errors.ApiError`.

    >>> parse_day("2026-02-28", "start")
    datetime.date(2026, 2, 28)
    >>> parse_day("0.0", "for")
    Traceback (most recent call last):
    ...
    api._errors.ApiError: query.for: '0.0' is not a date YYYY-MM-DD from 2000-01-01 to 2099-12-31
    """
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        day = None
    if day is None or len(value) != 10 or not FIRST_DAY <= day <= LAST_DAY:
        msg = f"{value!r} is not {DAY_WORDS}"
        raise ApiError(
            422, f"query.{name}: {msg}", [ErrorItem(loc=["query", name], msg=msg, type="day")]
        )
    return day


def clamp(day: date) -> date:
    """``day`` moved into the accepted range (defaults derived from the data).

    >>> clamp(date(1999, 12, 3)), clamp(date(2026, 1, 1))
    (datetime.date(2000, 1, 1), datetime.date(2026, 1, 1))
    """
    return min(max(day, FIRST_DAY), LAST_DAY)


Start = Annotated[str | None, _day("first day (UTC); default: 30 days before end")]
End = Annotated[
    str | None, _day("last day, included; default: the data's last day (not before start)")
]


def filters(
    request: Request,
    start: Start = None,
    end: End = None,
    channel: Value = None,
    campaign_id: Value = None,
    industry: Value = None,
    country: Value = None,
    size_bucket: Value = None,
    seniority: Value = None,
    band: Annotated[Band | None, Query(description="score band")] = None,
) -> Filters:
    """Every filter: the range, channel, campaign, segment fields and score band."""
    return _build(
        request, start, end, channel=channel, campaign_id=campaign_id, industry=industry,
        country=country, size_bucket=size_bucket, seniority=seniority, band=band,
    )  # fmt: skip


def scope(
    request: Request,
    start: Start = None,
    end: End = None,
    channel: Value = None,
    campaign_id: Value = None,
) -> Filters:
    """The range, channel and campaign (views kept per channel and campaign, not segment)."""
    return _build(request, start, end, channel=channel, campaign_id=campaign_id)


def channel_span(
    request: Request, start: Start = None, end: End = None, channel: Value = None
) -> Filters:
    """The range and a channel (attribution: journeys cross campaigns and segments)."""
    return _build(request, start, end, channel=channel)


def span(request: Request, start: Start = None, end: End = None) -> Filters:
    """The range only (views of the whole system, such as model health)."""
    return _build(request, start, end)


def _build(request: Request, start: str | None, end: str | None, **values: str | None) -> Filters:
    """The filters of a view request; the default range is the last 30 days of data."""
    first = parse_day(start, "start") if start else None
    if end:
        last = parse_day(end, "end")
    else:
        last = clamp(request.app.state.options().last_day or date.today())
        if first is not None:  # a range that starts after the data, or long before it
            last = min(max(first, last), first + timedelta(days=MAX_DAYS - 1), LAST_DAY)
    if first is None:
        first = clamp(last - timedelta(days=DEFAULT_DAYS - 1))
    try:
        return Filters.model_validate({"start": first, "end": last, **values})
    except ValidationError as exc:
        raise validation_error(exc) from None


def narrow(f: Filters, name: str, value: str) -> Filters | None:
    """``f`` with the filter ``name`` set from a path parameter; None if ``f`` had another value.

    Filters combine with AND: ``/channels/email/campaigns?channel=social`` is empty.
    """
    if getattr(f, name) not in (None, value):
        return None
    try:
        return Filters.model_validate({**f.model_dump(), name: value})
    except ValidationError as exc:
        raise validation_error(exc) from None
