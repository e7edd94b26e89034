"""How the synthetic generator writes things down.

The words, names and numbers that make a generated lead look real, the
malformed encodings of bad events, and the JSON Lines / CSV file writers.
:mod:`streaming.synthetic` holds the model (volumes, propensity, funnel) and
re-exports the public writers.
"""

from __future__ import annotations

import csv
import math
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import orjson

if TYPE_CHECKING:
    from streaming.synthetic import Emitted, LeadTruth


class Campaign(NamedTuple):
    channel: str
    campaign_id: str
    source: str
    share: float  # of all leads, before weekday and anomaly effects
    cpl: float  # spend per expected lead, USD; 0 for unpaid campaigns
    currency: str
    quality: float  # logit offset of the campaign within its channel


# channel: (share of leads, campaigns as (id, source, share in channel, cpl, currency, quality))
CHANNELS: dict[str, tuple[float, tuple[tuple[str, str, float, float, str, float], ...]]] = {
    "organic_search": (0.22, (("os-seo-01", "google", 0.7, 0.0, "USD", 0.0),
                              ("os-blog-02", "bing", 0.3, 0.0, "USD", -0.2))),
    "paid_search": (0.24, (("ps-brand-01", "google_ads", 0.35, 55.0, "USD", 0.5),
                           ("ps-generic-02", "google_ads", 0.35, 120.0, "USD", -0.1),
                           ("ps-competitor-03", "bing_ads", 0.15, 150.0, "USD", -0.3),
                           ("ps-retarget-04", "google_ads", 0.15, 70.0, "EUR", 0.3))),
    "paid_social": (0.20, (("so-linkedin-01", "linkedin", 0.5, 95.0, "USD", 0.3),
                           ("so-meta-02", "facebook", 0.35, 30.0, "USD", -0.3),
                           ("so-lookalike-03", "facebook", 0.15, 40.0, "EUR", -0.1))),
    "email": (0.10, (("em-newsletter-01", "newsletter", 0.5, 4.0, "USD", -0.2),
                     ("em-nurture-02", "hubspot", 0.3, 6.0, "USD", 0.3),
                     ("em-product-03", "hubspot", 0.2, 5.0, "USD", 0.1))),
    "referral": (0.06, (("rf-customer-01", "customer", 0.7, 0.0, "USD", 0.1),
                        ("rf-partner-site-02", "partner_site", 0.3, 0.0, "USD", -0.1))),
    "events": (0.08, (("ev-conference-01", "conference", 0.3, 220.0, "USD", 0.2),
                      ("ev-webinar-02", "webinar", 0.3, 35.0, "USD", -0.2),
                      ("ev-roadshow-03", "roadshow", 0.15, 260.0, "EUR", 0.1),
                      ("ev-meetup-04", "meetup", 0.15, 80.0, "USD", -0.1),
                      ("ev-tradeshow-05", "tradeshow", 0.1, 300.0, "EUR", 0.0))),
    "partners": (0.10, (("pa-reseller-01", "reseller", 0.45, 60.0, "EUR", 0.0),
                        ("pa-cosell-02", "cosell", 0.35, 90.0, "USD", 0.3),
                        ("pa-marketplace-03", "marketplace", 0.2, 45.0, "USD", -0.2))),
}  # fmt: skip
CAMPAIGN_LIST: tuple[Campaign, ...] = tuple(
    Campaign(ch, cid, src, share * w, cpl, cur, q)
    for ch, (share, camps) in CHANNELS.items()
    for cid, src, w, cpl, cur, q in camps
)
EUR_PER_USD = 0.92
WEEKDAY = (1.1, 1.15, 1.1, 1.05, 0.9, 0.35, 0.3)  # Monday first
HOURS = tuple(range(24))
_HOUR_W = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 12, 12, 13, 14, 14, 12, 10, 8, 6, 4, 3, 2, 1)
HOUR_CUM = tuple(sum(_HOUR_W[: h + 1]) for h in HOURS)  # UTC: Europe's day, then America's
TOUCH_TYPES = ("page_view", "pricing_page_view", "email_open", "email_click",
               "content_download", "webinar", "demo_request", "call")  # fmt: skip
# How engaged a channel's leads are before they fill the form (shifts behaviour, not logit).
_INTENT = {"organic_search": 0.2, "paid_search": 0.1, "paid_social": -0.5, "email": 0.0,
           "referral": 0.5, "events": 0.3, "partners": 0.2}  # fmt: skip
# Weak effects on the propensity logit; they do not drift.
_INDUSTRY = {"software": 0.25, "financial_services": 0.15, "healthcare": 0.1, "manufacturing": 0.0,
             "retail": -0.1, "education": -0.3, "government": -0.25, "media": -0.05,
             "logistics": 0.05, "energy": 0.1}  # fmt: skip
# alpha-2: (weight, alpha-3, name, weak effect, calling code, domain suffix)
_COUNTRY = {"US": (30, "USA", "United States", 0.1, "1", ".com"),
            "GB": (10, "GBR", "United Kingdom", 0.05, "44", ".co.uk"),
            "DE": (10, "DEU", "Germany", 0.05, "49", ".de"),
            "FR": (7, "FRA", "France", 0.0, "33", ".fr"),
            "CA": (6, "CAN", "Canada", 0.05, "1", ".ca"),
            "AU": (5, "AUS", "Australia", 0.0, "61", ".com.au"),
            "NL": (5, "NLD", "Netherlands", 0.05, "31", ".nl"),
            "IN": (9, "IND", "India", -0.3, "91", ".in"),
            "BR": (6, "BRA", "Brazil", -0.2, "55", ".com.br"),
            "ES": (4, "ESP", "Spain", -0.05, "34", ".es"),
            "SE": (3, "SWE", "Sweden", 0.05, "46", ".se"),
            "JP": (5, "JPN", "Japan", -0.1, "81", ".co.jp")}  # fmt: skip
_SPELLING_CUM = (0.9, 0.94, 0.97, 1.0)
_EURO = frozenset({"DE", "FR", "NL", "ES"})
_SENIORITY = ("entry", "manager", "director", "vp", "c_level")
_SENIORITY_CUM = (35, 65, 83, 93, 100)
_FUNCTIONS = {"Marketing": "Marketing", "Sales": "Revenue", "Engineering": "Technology",
              "IT": "Information", "Operations": "Operating", "Finance": "Financial"}  # fmt: skip
_FIRST = ("Ava", "Ben", "Chloe", "Daniel", "Elena", "Felix", "Grace", "Hugo", "Isla", "Jonas",
          "Kira", "Liam", "Maya", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Sven", "Tara",
          "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Aarav", "Lena", "Mateo",
          "Sofia")  # fmt: skip
_LAST = ("Smith", "Muller", "Garcia", "Chen", "Patel", "Johansson", "Dubois", "Rossi", "Kim",
         "Silva", "Novak", "Brown", "Tanaka", "Jansen", "Kowalski", "Nguyen", "Lopez", "Weber",
         "Singh", "Moreau", "Ali", "Murphy", "Schmidt", "Sato", "Costa", "Berg", "Clark",
         "Fischer", "Hughes", "Martin")  # fmt: skip
_FREEMAIL = ("gmail.com", "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "gmx.de")
_STEM = ("Nor", "Vel", "Quan", "Blue", "Iron", "Silver", "Apex", "Lumen", "Terra", "Nova",
         "Orbi", "Kest", "Zeph", "Hex", "Brio", "Cobal", "Dyna", "Fjord")  # fmt: skip
_TAIL = ("tek", "ora", "point", "forge", "wave", "line", "stack", "works", "leaf", "scale")
_SUFFIX = ("Inc", "Ltd", "GmbH", "Group", "Labs", "Systems", "Solutions")
_UTM = ("hero_cta", "sidebar", "footer_form", "exit_popup", "blog_inline")
_PAGES = ("/", "/product", "/features", "/customers", "/blog/lead-scoring", "/integrations")
_SITE = "https://www.example.com"


class Company(NamedTuple):
    name: str
    domain: str
    industry: str
    size: int
    country: str


def companies(rng: random.Random, n: int) -> list[Company]:
    """A pool of fake companies; several leads may come from one."""
    codes, weights = list(_COUNTRY), [v[0] for v in _COUNTRY.values()]
    out = []
    for _ in range(n):
        stem, tail = rng.choice(_STEM), rng.choice(_TAIL)
        country = rng.choices(codes, weights)[0]
        size = min(500_000, 1 + int(rng.lognormvariate(4.0, 1.6)))
        name = f"{stem}{tail} {rng.choice(_SUFFIX)}"
        domain = f"{stem}{tail}".lower() + _COUNTRY[country][5]
        out.append(Company(name, domain, rng.choice(tuple(_INDUSTRY)), size, country))
    return out


def lead_fields(
    rng: random.Random, camp: Campaign, co: Company
) -> tuple[dict[str, Any], bool, float]:
    """A lead's fields (without the envelope and id), whether it used free-mail, weak logit."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    seniority = rng.choices(_SENIORITY, cum_weights=_SENIORITY_CUM)[0]
    function = rng.choice(tuple(_FUNCTIONS))
    intent = rng.gauss(0.0, 1.0) + _INTENT[camp.channel]
    visits = rng.random() < 1 / (1 + math.exp(1.2 - intent))
    pricing = 1 + int(rng.expovariate(1.0)) if visits else 0
    opens = int(rng.expovariate(1.0 / (2.5 if camp.channel == "email" else 0.8)))
    demo = rng.random() < 1 / (1 + math.exp(3.0 - 1.2 * intent - 0.5 * (pricing > 0)))
    freemail = rng.random() < (0.4 if co.size < 20 else 0.15)
    if freemail:
        email = f"{first}{last}{rng.randrange(1, 99)}@{rng.choice(_FREEMAIL)}".lower()
    else:
        email = f"{first}.{last}@{co.domain}".lower()
    info = _COUNTRY[co.country]
    # Mostly alpha-2; sometimes alpha-3, the name or lower case, for the normaliser.
    country = rng.choices((co.country, info[1], info[2], co.country.lower()), _SPELLING_CUM)[0]
    ip = rng.getrandbits(24)
    lead: dict[str, Any] = {
        "channel": camp.channel, "source": camp.source, "campaign_id": camp.campaign_id,
        "email": email, "first_name": first, "last_name": last, "company": co.name,
        "industry": co.industry, "company_size": co.size, "country": country,
        "seniority": seniority, "job_title": _title(seniority, function),
        "pages_viewed": 1 + int(rng.expovariate(1.0 / (1.5 * math.exp(0.5 * intent)))),
        "pricing_page_visits": pricing, "email_opens": opens,
        "email_clicks": int(opens * rng.random() * 0.6), "demo_requested": demo,
        "ip_address": f"{rng.randrange(11, 223)}.{ip >> 16}.{(ip >> 8) & 255}.{ip & 255}",
        "utm_content": rng.choice(_UTM), "landing_page": _SITE + rng.choice(_PAGES),
    }  # fmt: skip
    if rng.random() < 0.75:
        lead["phone"] = f"+{info[4]} {rng.randrange(100, 999)} {rng.randrange(10**6, 10**7)}"
    if rng.random() < 0.03:
        del lead["industry"]
    elif rng.random() < 0.03:  # as a CRM would type it, for the normaliser
        lead["industry"] = co.industry.replace("_", " ").title()
    return lead, freemail, _INDUSTRY[co.industry] * ("industry" in lead) + info[3]


def _title(seniority: str, function: str) -> str:
    if seniority == "entry":
        return f"{function} Specialist"
    if seniority == "manager":
        return f"{function} Manager"
    if seniority == "director":
        return f"Director of {function}"
    if seniority == "vp":
        return f"VP {function}"
    return f"Chief {_FUNCTIONS[function]} Officer"


def revenue(rng: random.Random, co: Company) -> dict[str, str]:
    """Revenue and currency of a won deal; bigger companies buy bigger deals."""
    usd = 4000.0 * (co.size / 50.0) ** 0.4 * rng.lognormvariate(0.0, 0.3)
    if co.country in _EURO:
        return {"revenue": f"{usd * EUR_PER_USD:.2f}", "currency": "EUR"}
    return {"revenue": f"{usd:.2f}", "currency": "USD"}


def updated(rng: random.Random, lead: dict[str, Any], p: float) -> dict[str, Any]:
    """The lead's fields a few days later, with more engagement."""
    out = dict(lead)
    out["pages_viewed"] += 1 + int(rng.expovariate(1.0 / (2.0 + 10.0 * p)))
    out["pricing_page_visits"] += rng.random() < 0.1 + p
    out["email_opens"] += int(rng.expovariate(1.0 / 1.5))
    out["demo_requested"] = lead["demo_requested"] or rng.random() < 0.3 * p
    return out


def url(rng: random.Random, event_type: str) -> str | None:
    """The page a touchpoint happened on, if it happened on one."""
    if event_type == "page_view":
        return _SITE + rng.choice(_PAGES)
    if event_type == "pricing_page_view":
        return _SITE + "/pricing"
    if event_type == "content_download":
        return f"{_SITE}/resources/guide-{rng.randrange(1, 12)}.pdf"
    return None


_KEY_FIELD = {"lead": "lead_id", "touchpoint": "lead_id", "conversion": "lead_id",
              "spend": "campaign_id"}  # fmt: skip
_WRONG_TYPE = {"lead": ("pages_viewed", "lots"), "touchpoint": ("lead_id", 12345),
               "conversion": ("revenue", "a lot"), "spend": ("amount", "twelve")}  # fmt: skip
_UNKNOWN_TYPES = ("deleted", "lead_deleted", "stage_changed", "refund")
_SPECIFIC = {"lead": ("country", "Atlantis"), "touchpoint": ("occurred_at", "2026-01-05T10:00:00"),
             "conversion": ("stage", "closed"), "spend": ("amount", "-12.50")}  # fmt: skip


def spoil(
    rng: random.Random, kind: str, value: dict[str, Any], event_id: str
) -> dict[str, Any] | bytes:
    """A broken copy of a good event that its model must reject.

    >>> spoil(random.Random(1), "conversion", {"stage": "sql"}, "ev-bad-0")
    {'stage': 'sql', 'event_id': 'ev-bad-0', 'revenue': 'a lot'}
    """
    out = {**value, "event_id": event_id}
    how = rng.randrange(6)
    if how == 0:  # cut off mid-object: never parses
        raw = orjson.dumps(out)
        return raw[: rng.randrange(1, len(raw))] if rng.random() < 0.8 else b"\xff\xfenot json"
    if how == 1:
        field, bad = _WRONG_TYPE[kind]
    elif how == 2:
        field, bad = "event_type", rng.choice(_UNKNOWN_TYPES)
    elif how == 3:
        del out[rng.choice(("occurred_at", "event_type", _KEY_FIELD[kind]))]
        return out
    elif how == 4:
        field, bad = _SPECIFIC[kind]
    else:
        field, bad = "schema_version", 99
    out[field] = bad
    return out


def write_jsonl(events: Iterable[Emitted], path: str | Path) -> int:
    """Write one ``{"kind", "key", "value"}`` object per line; return how many.

    A bytes value (a malformed event) is written as a JSON string of its text.

    >>> import tempfile, pathlib
    >>> from streaming.synthetic import Emitted
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "e.jsonl")
    ...     write_jsonl([Emitted("spend", "c1", {"amount": "1.50"})], p), p.read_text()
    (1, '{"kind":"spend","key":"c1","value":{"amount":"1.50"}}\\n')
    """
    n = 0
    with Path(path).open("wb") as fh:
        for ev in events:
            value = ev.value.decode("utf-8", "replace") if isinstance(ev.value, bytes) else ev.value
            line = {"kind": ev.kind, "key": ev.key, "value": value}
            fh.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            n += 1
    return n


_CSV_NAMES = {"lead": "leads.csv", "touchpoint": "touchpoints.csv",
              "conversion": "conversions.csv", "spend": "spend.csv"}  # fmt: skip


def write_csv(events: Iterable[Emitted], directory: str | Path) -> dict[str, Path]:
    """Write one CSV per kind (``leads.csv``, ``touchpoints.csv``, ...); return the paths.

    Columns are the union of the fields, in order of first appearance; a
    missing field is an empty cell, booleans are ``true``/``false``. Events
    whose value is bytes (malformed JSON) have no row form and are skipped.
    Rows are spooled to temporary files first, so memory stays flat.

    >>> import tempfile, pathlib
    >>> from streaming.synthetic import Emitted
    >>> with tempfile.TemporaryDirectory() as d:
    ...     rows = [Emitted("lead", "L1", {"a": 1}), Emitted("lead", "L2", {"b": True})]
    ...     out = write_csv(rows, d)
    ...     out["lead"].read_text().splitlines()
    ['a,b', '1,', ',true']
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    columns: dict[str, dict[str, None]] = {}
    spools: dict[str, IO[bytes]] = {}
    paths: dict[str, Path] = {}
    with ExitStack() as stack:
        for ev in events:
            if isinstance(ev.value, bytes):
                continue
            spool = spools.get(ev.kind)
            if spool is None:
                spool = spools[ev.kind] = stack.enter_context(tempfile.TemporaryFile(dir=out))
                columns[ev.kind] = {}
            columns[ev.kind].update(dict.fromkeys(ev.value))
            spool.write(orjson.dumps(ev.value, option=orjson.OPT_APPEND_NEWLINE))
        for kind, spool in spools.items():
            spool.seek(0)
            paths[kind] = out / _CSV_NAMES.get(kind, f"{kind}.csv")
            with paths[kind].open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(columns[kind]), restval="")
                writer.writeheader()
                for line in spool:
                    writer.writerow({k: _cell(v) for k, v in orjson.loads(line).items()})
    return paths


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


_TRUTH_HEADER = ("lead_id", "occurred_at", "channel", "campaign_id", "propensity", "converted",
                 "stage", "drifted")  # fmt: skip


@contextmanager
def truth_writer(path: str | Path | None) -> Iterator[Callable[[LeadTruth], None] | None]:
    """Stream each lead's truth to a CSV as :func:`generate` reports it.

    Yields the callback to pass as ``truth``, or None when ``path`` is None.
    The columns are those of :func:`write_truth`.

    >>> import tempfile, pathlib
    >>> from streaming.synthetic import GeneratorConfig, generate
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d, "truth.csv")
    ...     with truth_writer(path) as record:
    ...         n = sum(1 for _ in generate(GeneratorConfig(leads=30, days=3), truth=record))
    ...     path.read_text().splitlines()[0]
    'lead_id,occurred_at,channel,campaign_id,propensity,converted,stage,drifted'
    """
    if path is None:
        yield None
        return
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(_TRUTH_HEADER)

        def record(t: LeadTruth) -> None:
            writer.writerow(
                (t.lead_id, t.occurred_at, t.channel, t.campaign_id, f"{t.propensity:.6f}",
                 int(t.converted), t.stage, int(t.drifted))
            )  # fmt: skip

        yield record


def write_truth(path: str | Path, truths: Iterable[LeadTruth]) -> int:
    """Write the hidden truth of each lead as CSV (flags as 1/0); return how many rows.

    ``converted`` is 1 when the lead reached ``sql``; ``stage`` is the furthest
    stage reached; ``drifted`` is 1 for leads created after the drift point.

    >>> import tempfile, pathlib
    >>> from streaming.synthetic import LeadTruth
    >>> t = LeadTruth("ld-7-0", "2026-01-05T09:00:00Z", "email", "em-nurture-02", 0.25,
    ...               True, "won", False)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "truth.csv")
    ...     write_truth(p, [t]), p.read_text().splitlines()[1]
    (1, 'ld-7-0,2026-01-05T09:00:00Z,email,em-nurture-02,0.250000,1,won,0')
    """
    n = 0
    with truth_writer(path) as record:
        assert record is not None  # a path was given
        for t in truths:
            record(t)
            n += 1
    return n
