"""What a score means to sales: its band A-D, its value band, and the reasons shown."""

from __future__ import annotations

from typing import Any

from online_models.lead_scorer import Contribution


def band(score: float, a: float, b: float, c: float) -> str:
    """Band A–D from a score and the thresholds of A, B and C.

    >>> [band(s, 0.5, 0.25, 0.1) for s in (0.9, 0.5, 0.3, 0.1, 0.05)]
    ['A', 'A', 'B', 'C', 'D']
    """
    if score >= a:
        return "A"
    if score >= b:
        return "B"
    if score >= c:
        return "C"
    return "D"


def value_band(
    score: float,
    expected_revenue: float,
    mean_revenue: float,
    cap: float,
    a: float,
    b: float,
    c: float,
) -> str:
    """The band of a lead from its probability and its expected deal size together.

    The probability is weighted by how the lead's expected revenue compares with the
    mean deal, the ratio capped to ``[1/cap, cap]``: ``band(score × ratio)``. Leads are
    thus ordered by expected value (``score × expected revenue``), while a lead that
    is unlikely to convert cannot reach band A on deal size alone (with ``cap = 2``,
    a score below a/2 never makes A). Before any revenue is known the ratio is 1.

    >>> value_band(0.3, 20000.0, 10000.0, 2.0, 0.5, 0.25, 0.1)  # a big deal: B becomes A
    'A'
    >>> value_band(0.3, 2000.0, 10000.0, 2.0, 0.5, 0.25, 0.1)   # a small one: C (0.3 × 0.5)
    'C'
    >>> value_band(0.2, 90000.0, 10000.0, 2.0, 0.5, 0.25, 0.1)  # capped: 0.2 × 2 = 0.4
    'B'
    """
    ratio = expected_revenue / mean_revenue if mean_revenue > 0 else 1.0
    ratio = min(cap, max(1.0 / cap, ratio))
    return band(score * ratio, a, b, c)


_LABELS: dict[str, str] = {
    "pages_viewed": "pages viewed",
    "pricing_page_visits": "pricing-page visits",
    "email_opens": "e-mail opens",
    "email_clicks": "e-mail clicks",
    "demo_requested": "requested a demo",
    "log_company_size": "company size",
    "email_is_free": "uses a free e-mail address",
    "email_is_role": "uses a role mailbox",
    "has_phone": "left a phone number",
}


#: How a feature reads with the lead's own value (a count, as the lead gave it).
_WITH_VALUE: dict[str, str] = {
    "pages_viewed": "{} pages viewed",
    "pricing_page_visits": "{} pricing-page visits",
    "email_opens": "{} e-mail opens",
    "email_clicks": "{} e-mail clicks",
    "log_company_size": "company size {} employees",
}
#: The raw lead field a feature's value is quoted from, where the names differ.
RAW_FIELD: dict[str, str] = {"log_company_size": "company_size"}


def reason(c: Contribution, raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """A contribution as a record with a sentence sales can read.

    >>> reason(Contribution("channel=paid_search", 1.0, 0.42))["text"]
    'channel is paid search: raises the score'
    >>> reason(Contribution("pricing_page_visits", 1.386, 0.3), {"pricing_page_visits": 3})["text"]
    '3 pricing-page visits: raises the score'
    >>> reason(Contribution("log_company_size", 5.53, -0.2))["text"]  # never the logarithm
    'company size: lowers the score'
    >>> reason(Contribution("log_company_size", 5.53, -0.2), {"company_size": 250})["text"]
    'company size 250 employees: lowers the score'
    """
    effect = "raises the score" if c.contribution > 0 else "lowers the score"
    if "=" in c.feature:
        name, value = c.feature.split("=", 1)
        text = f"{name.replace('_', ' ')} is {value.replace('_', ' ')}: {effect}"
    else:
        label = _LABELS.get(c.feature, c.feature.removeprefix("eng_").replace("_", " "))
        shown = (raw or {}).get(RAW_FIELD.get(c.feature, c.feature))
        if shown in (None, True, False):
            text = f"{label}: {effect}"
        else:
            template = _WITH_VALUE.get(c.feature, label + " {}")
            text = f"{template.format(shown)}: {effect}"
    return {
        "feature": c.feature,
        "value": round(c.value, 4),
        "contribution": round(c.contribution, 4),
        "text": text,
    }
