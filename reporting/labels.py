"""How the report and the advice name things: indicators, funnel stages and lead segments.

The data keeps its keys (``cpl``, ``email_is_free``, ``paid_search``); a reader sees
"Cost per lead", "a free e-mail address", "paid search".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["KPI_LABELS", "keep_money_together", "segment_phrase", "stage_label"]

#: Key indicator → (label, unit). Rates are shown in percent.
KPI_LABELS: dict[str, tuple[str, str]] = {
    "leads": ("New leads", "leads"),
    "mql": ("Reached MQL", "leads"),
    "sql": ("Reached SQL", "leads"),
    "won": ("Deals won", "deals"),
    "revenue": ("Revenue won", "{currency}"),
    "spend": ("Spend", "{currency}"),
    "cpl": ("Cost per lead", "{currency}"),
    "cpa": ("Cost per won deal", "{currency}"),
    "roas": ("Return on ad spend", "revenue ÷ spend"),
    "conversion_rate": ("SQL rate", "% of new leads"),
}

_STAGES = {"leads": "New leads", "mql": "MQL", "sql": "SQL", "opportunity": "Opportunity",
           "won": "Won", "lost": "Lost"}  # fmt: skip

_YES_NO = {
    "email_is_free": ("a free e-mail address", "a company e-mail address"),
    "demo_requested": ("asked for a demo", "no demo request"),
    "has_phone": ("gave a phone number", "no phone number"),
}
_COUNTS = {"pricing_page_visits": "pricing-page visits", "pages_viewed": "pages viewed"}
_NAMED = {"company_size": "company size {} employees", "utm_content": "ad content {}"}


def stage_label(stage: str) -> str:
    """A funnel stage as a reader names it.

    >>> stage_label("mql"), stage_label("opportunity"), stage_label("other")
    ('MQL', 'Opportunity', 'other')
    """
    return _STAGES.get(stage, stage)


def segment_phrase(fields: Sequence[str], values: Sequence[str]) -> str:
    """A segment (fields and their values) in words.

    >>> segment_phrase(["email_is_free"], ["no"])
    'a company e-mail address'
    >>> segment_phrase(["channel", "company_size"], ["paid_search", "51-200"])
    'channel paid search & company size 51-200 employees'
    >>> segment_phrase(["pricing_page_visits", "industry"], ["4+", "(missing)"])
    '4+ pricing-page visits & industry not given'
    """
    return " & ".join(_one(f, v) for f, v in zip(fields, values, strict=True))


def _one(field: str, value: str) -> str:
    if field in _YES_NO:
        yes, no = _YES_NO[field]
        return yes if value == "yes" else no
    if field in _COUNTS:
        return f"{value} {_COUNTS[field]}"
    if value == "(missing)":
        return f"{field.replace('_', ' ')} not given"
    if field in _NAMED:
        return _NAMED[field].format(value)
    return f"{field.replace('_', ' ')} {value.replace('_', ' ')}"


def keep_money_together(text: str, currency: str) -> str:
    """``text`` with a no-break space between the currency and its amount, so a line
    never ends between them.

    >>> keep_money_together("spend USD 1,200 and +USD 30", "USD")
    'spend USD\\xa01,200 and +USD\\xa030'
    """
    return re.sub(rf"\b{re.escape(currency)} (?=[+\-−]?\d)", f"{currency}\u00a0", text)
