"""Event contracts: one pydantic model per kind of raw event.

Every event has ``event_id``, ``event_type``, ``occurred_at`` (ISO 8601 with a
time zone, stored as UTC) and ``schema_version``. Extra fields are kept.
Validation errors become one precise, human-readable reason via
:func:`describe_errors`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import pycountry
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from config.settings import STAGES

SUPPORTED_SCHEMA_VERSIONS: frozenset[int] = frozenset({1})
LEAD_EVENT_TYPES: tuple[str, ...] = ("lead_created", "lead_updated")
TOUCHPOINT_EVENT_TYPES: tuple[str, ...] = (
    "page_view",
    "pricing_page_view",
    "email_open",
    "email_click",
    "content_download",
    "webinar",
    "demo_request",
    "call",
)
CONVERSION_EVENT_TYPES: tuple[str, ...] = ("stage_change",)
SPEND_EVENT_TYPES: tuple[str, ...] = ("spend",)

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_SLUG = re.compile(r"[^a-z0-9]+")
_FIRST_DAY, _LAST_DAY = date(2000, 1, 1), date(2149, 6, 6)
_Date = date  # `date` is also a field name of SpendEvent


def slug(value: str) -> str:
    """Lower-case a category and join its words with underscores.

    >>> slug("  Paid Search ")
    'paid_search'
    """
    return _SLUG.sub("_", value.strip().lower()).strip("_")


def _nonempty_slug(value: str) -> str:
    """A slug that keeps at least one letter or digit (``'!!!'`` would become ``''``)."""
    out = slug(value)
    if not out:
        raise ValueError(f"{value!r} has no letters or digits")
    return out


@lru_cache(maxsize=1024)
def country_code(value: str) -> str:
    """Normalise a country name or ISO code to ISO 3166-1 alpha-2.

    >>> country_code("deu"), country_code("us"), country_code("France")
    ('DE', 'US', 'FR')
    """
    text = value.strip()
    try:
        found = pycountry.countries.lookup(text)
    except LookupError:
        raise ValueError(f"country {value!r} is not an ISO 3166 code or country name") from None
    return str(found.alpha_2)


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)

    event_id: str = Field(pattern=_ID)
    event_type: str
    occurred_at: datetime
    schema_version: int

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at needs a time zone (for example 2026-01-05T10:00:00Z)")
        return value.astimezone(UTC)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            known = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
            raise ValueError(f"schema_version {value} is not supported (known: {known})")
        return value


class LeadEvent(_Event):
    """A lead was created or updated (form fill, CRM import)."""

    event_type: Literal["lead_created", "lead_updated"]
    lead_id: str = Field(pattern=_ID)
    channel: str = Field(min_length=1, max_length=64)
    source: str | None = Field(None, max_length=128)
    campaign_id: str | None = Field(None, max_length=128)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=64)
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=400)
    ip_address: str | None = Field(None, max_length=64)
    company: str | None = Field(None, max_length=300)
    industry: str | None = Field(None, max_length=100)
    company_size: int | None = Field(None, ge=0, le=10_000_000)
    country: str | None = Field(None, max_length=60)
    seniority: str | None = Field(None, max_length=60)
    job_title: str | None = Field(None, max_length=200)
    pages_viewed: int = Field(0, ge=0, le=1_000_000)
    pricing_page_visits: int = Field(0, ge=0, le=1_000_000)
    email_opens: int = Field(0, ge=0, le=1_000_000)
    email_clicks: int = Field(0, ge=0, le=1_000_000)
    demo_requested: bool = False

    @field_validator("channel", "industry", "seniority")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        return _nonempty_slug(value) if value else value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return country_code(value) if value else None


class TouchpointEvent(_Event):
    """Engagement with a lead: a page view, an e-mail open, a demo request, a call…"""

    event_type: Literal[
        "page_view",
        "pricing_page_view",
        "email_open",
        "email_click",
        "content_download",
        "webinar",
        "demo_request",
        "call",
    ]
    lead_id: str = Field(pattern=_ID)
    channel: str | None = Field(None, max_length=64)
    campaign_id: str | None = Field(None, max_length=128)
    url: str | None = Field(None, max_length=2048)


class ConversionEvent(_Event):
    """A lead moved to a funnel stage; ``won`` carries the revenue."""

    event_type: Literal["stage_change"]
    lead_id: str = Field(pattern=_ID)
    stage: str
    revenue: Decimal | None = Field(None, ge=0, le=Decimal("1e12"), decimal_places=4)
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$")

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str) -> str:
        stage = value.strip().lower()
        if stage not in STAGES:
            raise ValueError(f"stage {value!r} is not one of {', '.join(STAGES)}")
        return stage

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value


class SpendEvent(_Event):
    """Money spent on a campaign on one day."""

    event_type: Literal["spend"]
    campaign_id: str = Field(pattern=_ID)
    channel: str = Field(min_length=1, max_length=64)
    date: date
    amount: Decimal = Field(ge=0, le=Decimal("1e12"), decimal_places=4)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")

    @field_validator("channel")
    @classmethod
    def _slug(cls, value: str) -> str:
        return _nonempty_slug(value)

    @field_validator("date")
    @classmethod
    def _storable(cls, value: _Date) -> _Date:
        # ClickHouse's Date holds 1970-01-01 to 2149-06-06; outside it the insert would fail.
        if not _FIRST_DAY <= value <= _LAST_DAY:
            raise ValueError(
                f"date {value.isoformat()} is not between {_FIRST_DAY} and {_LAST_DAY}"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


EVENT_MODELS: dict[str, type[_Event]] = {
    "lead": LeadEvent,
    "touchpoint": TouchpointEvent,
    "conversion": ConversionEvent,
    "spend": SpendEvent,
}

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "lead": LEAD_EVENT_TYPES,
    "touchpoint": TOUCHPOINT_EVENT_TYPES,
    "conversion": CONVERSION_EVENT_TYPES,
    "spend": SPEND_EVENT_TYPES,
}


def describe_errors(error: ValidationError) -> str:
    """One line naming every field that failed and why (the caller names the topic).

    >>> try:
    ...     ConversionEvent.model_validate({"event_id": "e1", "event_type": "stage_change",
    ...         "occurred_at": "2026-01-05T10:00:00Z", "schema_version": 1,
    ...         "lead_id": "L1", "stage": "closed"})
    ... except ValidationError as exc:
    ...     print(describe_errors(exc))
    stage 'closed' is not one of mql, sql, opportunity, won, lost
    """
    return "; ".join(_describe_one(err) for err in error.errors(include_url=False))


def _describe_one(err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "event"
    kind = err["type"]
    if kind == "missing":
        return f"{field} is missing"
    if kind == "value_error":
        # Our own validators already phrase the whole reason.
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        allowed = str(err.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{field} {_short(err.get('input'))} is not one of {allowed}"
    return f"{field} {_short(err.get('input'))}: {str(err['msg']).lower()}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
