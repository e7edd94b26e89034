"""Deterministic synthetic lead-generation events for demos, tests and benchmarks.

:func:`generate` yields lead, touchpoint, conversion and spend events, ordered by
``occurred_at``, as :class:`Emitted` records ready for a producer or a writer.
Each lead carries a hidden conversion propensity (a logistic function of its
features). The ``truth`` callback receives it, so a model can be graded against
the best achievable score. Pure generation: no Kafka, no clock. The same
configuration always gives the same events, byte for byte.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from streaming import _synthetic_journeys as _j
from streaming import _synthetic_writers as _w
from streaming._synthetic_journeys import DIRECT, JOURNEY, ChannelTruth, JourneyChannel
from streaming._synthetic_writers import truth_writer, write_csv, write_jsonl, write_truth

__all__ = [
    "CAMPAIGNS",
    "DIRECT",
    "JOURNEY",
    "Anomaly",
    "AnomalyKind",
    "ChannelTruth",
    "Emitted",
    "GeneratorConfig",
    "JourneyChannel",
    "LeadTruth",
    "generate",
    "propensities",
    "truth_writer",
    "write_csv",
    "write_jsonl",
    "write_truth",
]

Kind = Literal["lead", "touchpoint", "conversion", "spend"]
AnomalyKind = Literal[
    "volume_spike", "volume_drop", "conversion_drop", "cpl_spike", "conversion_surge"
]

_DAY = 86_400
_VOLUME = ("volume_spike", "volume_drop")
_CONVERSION = ("conversion_drop", "conversion_surge")

#: Channel -> its campaign ids, for configuring anomalies.
CAMPAIGNS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {ch: tuple(c.campaign_id for c in _w.CAMPAIGN_LIST if c.channel == ch) for ch in _w.CHANNELS}
)


@dataclass(frozen=True)
class Anomaly:
    """An injected anomaly: a multiplier on one channel (or campaign) for some days.

    ``volume_*`` multiplies lead counts, ``conversion_*`` the conversion
    propensity of the leads created in the window, ``cpl_spike`` the spend.

    Examples
    --------
    >>> Anomaly("volume_spike", "paid_social", None, start_day=30, days=3, factor=3.0).applies(
    ...     "paid_social", "so-meta-02", 31)
    True
    """

    kind: AnomalyKind
    channel: str
    campaign_id: str | None
    start_day: int
    days: int
    factor: float

    def applies(self, channel: str, campaign_id: str, day: int) -> bool:
        """Whether this anomaly touches ``campaign_id`` of ``channel`` on ``day``."""
        return (
            channel == self.channel
            and self.campaign_id in (None, campaign_id)
            and self.start_day <= day < self.start_day + self.days
        )


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate.

    Parameters
    ----------
    seed
        Everything random derives from it.
    leads
        About how many leads over the whole period, before volume anomalies.
    start
        The first day (UTC); events run for ``days`` days, delayed conversions beyond.
    days
        Length of the period in which leads arrive.
    bad_fraction
        Expected deliberately malformed events per good event (extra events).
    duplicate_fraction
        Expected re-sent copies (same ``event_id``, same content) per good event.
    drift_at
        Share of the lead stream after which the propensity coefficients change.
    drift_to
        The concept after the drift: ``fading_engagement`` (engagement matters less,
        small companies and paid social convert better; the outcome becomes harder to
        predict) or ``reversed_firmographics`` (engagement and channel matter as
        before, the effects of company size, seniority and free-mail are reversed;
        about as predictable as before, so a model can recover its old accuracy).
    anomalies
        Injected anomalies.
    journeys
        Touch each lead through several channels after its creation (see
        :data:`JOURNEY`): touchpoints carry their own ``channel`` and ``campaign_id``,
        each channel that reached a lead shifts its propensity by a hidden effect, and
        the lead's own engagement is ``direct``. Off by default: the single-channel
        events stay as they were.

    Examples
    --------
    >>> GeneratorConfig(leads=100, drift_at=1.5)
    Traceback (most recent call last):
    ...
    ValueError: drift_at must be in (0, 1), got 1.5
    """

    seed: int = 7
    leads: int = 20_000
    start: date = date(2026, 1, 5)
    days: int = 120
    bad_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    drift_at: float | None = None
    drift_to: Literal["fading_engagement", "reversed_firmographics"] = "fading_engagement"
    anomalies: tuple[Anomaly, ...] = ()
    journeys: bool = False

    def __post_init__(self) -> None:
        if self.leads < 0 or self.days < 1 or self.seed < 0:
            raise ValueError("leads and seed must be >= 0 and days >= 1")
        for name in ("bad_fraction", "duplicate_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.drift_at is not None and not 0.0 < self.drift_at < 1.0:
            raise ValueError(f"drift_at must be in (0, 1), got {self.drift_at}")
        if self.drift_to not in _DRIFTS:
            raise ValueError(f"drift_to must be one of {', '.join(_DRIFTS)}, got {self.drift_to!r}")
        for a in self.anomalies:
            if a.channel not in CAMPAIGNS:
                raise ValueError(f"anomaly channel {a.channel!r} is not one of {list(CAMPAIGNS)}")
            if a.campaign_id is not None and a.campaign_id not in CAMPAIGNS[a.channel]:
                raise ValueError(f"campaign {a.campaign_id!r} is not in channel {a.channel!r}")
            if a.factor < 0 or a.days < 1 or a.start_day < 0:
                raise ValueError(f"anomaly needs factor >= 0, days >= 1, start_day >= 0: {a}")


@dataclass(frozen=True, slots=True)
class Emitted:
    """One generated event: its kind, partition key and value.

    ``value`` is a JSON-ready dict, or already-encoded bytes for a malformed
    event; ``bad`` marks events built to be rejected.
    """

    kind: Kind
    key: str
    value: dict[str, Any] | bytes
    bad: bool = False


class LeadTruth(NamedTuple):
    """The hidden facts about one lead, for grading a model."""

    lead_id: str
    occurred_at: str
    channel: str
    campaign_id: str
    propensity: float
    converted: bool  # reached ``sql``: the outcome the propensity is the probability of
    stage: str  # the furthest stage reached, "" if none
    drifted: bool


def generate(
    cfg: GeneratorConfig,
    truth: Callable[[LeadTruth], None] | None = None,
    channel_truth: ChannelTruth | None = None,
) -> Iterator[Emitted]:
    """Yield the synthetic events of ``cfg`` in non-decreasing ``occurred_at`` order.

    Parameters
    ----------
    cfg
        What to generate.
    truth
        Called once per lead, when the lead is created, with its hidden truth.
    channel_truth
        With ``cfg.journeys``, receives each lead's removal effects per channel (the
        hidden truth of what each channel contributes; see :class:`ChannelTruth`).

    Examples
    --------
    >>> truths = []
    >>> events = list(generate(GeneratorConfig(leads=40, days=7), truth=truths.append))
    >>> first = events[0]
    >>> first.kind, first.value["event_id"], first.value["event_type"]
    ('lead', 'ev-7-0', 'lead_created')
    >>> first.value["occurred_at"]
    '2026-01-05T...Z'
    >>> sorted({e.kind for e in events})
    ['conversion', 'lead', 'spend', 'touchpoint']
    >>> len(truths) == sum(e.value["event_type"] == "lead_created" for e in events)
    True
    """
    events = _Run(cfg, truth, channel_truth).events()
    if cfg.bad_fraction or cfg.duplicate_fraction:
        events = _with_noise(events, cfg)
    return events


def propensities(cfg: GeneratorConfig) -> dict[str, float]:
    """The hidden propensity of every lead of ``cfg`` (runs the whole generator).

    Examples
    --------
    >>> p = propensities(GeneratorConfig(leads=20, days=3))
    >>> all(0.0 < v < 1.0 for v in p.values()), len(p) > 10
    (True, True)
    """
    out: dict[str, float] = {}
    for _ in generate(cfg, truth=lambda t: out.__setitem__(t.lead_id, t.propensity)):
        pass
    return out


@dataclass(frozen=True)
class _Coefs:
    """Logit coefficients of the hidden propensity; drift swaps one set for another."""

    intercept: float
    pricing: float  # per pricing-page visit, up to 4
    demo: float
    size: float  # per decade of employees away from 100
    pages: float  # per page, up to 20
    opens: float  # per e-mail open, up to 10
    clicks: float  # per e-mail click, up to 5
    freemail: float
    seniority: dict[str, float]
    channel: dict[str, float]


_BEFORE = _Coefs(
    -2.45, 0.55, 1.5, 0.45, 0.05, 0.03, 0.12, -0.6,
    {"entry": -0.5, "manager": 0.0, "director": 0.35, "vp": 0.6, "c_level": 0.8},
    {"organic_search": 0.15, "paid_search": 0.0, "paid_social": -0.7, "email": 0.05,
     "referral": 0.9, "events": 0.35, "partners": 0.3},
)  # fmt: skip
# After drift: engagement matters less, small companies and paid social convert better.
_AFTER = _Coefs(
    -2.6, 0.2, 0.6, -0.35, 0.08, 0.05, 0.3, -0.1,
    {"entry": 0.2, "manager": 0.3, "director": 0.1, "vp": -0.2, "c_level": -0.4},
    {"organic_search": 0.0, "paid_search": -0.2, "paid_social": 0.6, "email": 0.3,
     "referral": 0.2, "events": -0.4, "partners": 0.0},
)  # fmt: skip
# After drift: engagement and channel effects as before; the effects of company size,
# seniority and free-mail are reversed (about the same base rate and truth AUC as before).
_REVERSED = _Coefs(
    -3.9, 0.55, 1.5, -1.0, 0.05, 0.03, 0.12, 0.45,
    {"entry": 1.2, "manager": 0.85, "director": 0.35, "vp": -0.25, "c_level": -0.7},
    dict(_BEFORE.channel),
)  # fmt: skip
_DRIFTS = {"fading_engagement": _AFTER, "reversed_firmographics": _REVERSED}


def _propensity(c: _Coefs, lead: dict[str, Any], freemail: bool, offset: float) -> float:
    x = (
        c.intercept
        + offset
        + c.channel[lead["channel"]]
        + c.pricing * min(lead["pricing_page_visits"], 4)
        + c.demo * lead["demo_requested"]
        + c.size * (math.log10(lead["company_size"]) - 2.0)
        + c.pages * min(lead["pages_viewed"], 20)
        + c.opens * min(lead["email_opens"], 10)
        + c.clicks * min(lead["email_clicks"], 5)
        + c.freemail * freemail
        + c.seniority[lead["seniority"]]
    )
    return 1.0 / (1.0 + math.exp(-x))


class _Run:
    """One pass of the generator; holds the heap of events not yet due."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        truth: Callable[[LeadTruth], None] | None,
        channel_truth: ChannelTruth | None = None,
    ) -> None:
        self.cfg, self.truth, self.channel_truth = cfg, truth, channel_truth
        self.rng = _rng(cfg.seed)
        self.lead_rng = _rng(0)
        self.companies = _w.companies(_rng(cfg.seed + 1), max(50, cfg.leads // 4))
        self.heap: list[tuple[int, int, Kind, str, str, dict[str, Any]]] = []
        self.seq = 0
        self.leads_made = 0
        self.dates: dict[int, str] = {}
        self.counts, self.spend, self.conv = self._plan()
        total = sum(map(sum, self.counts))
        self.drift_index = None if cfg.drift_at is None else math.ceil(cfg.drift_at * total)

    def _plan(self) -> tuple[list[list[int]], list[list[float]], list[list[float]]]:
        """Lead counts, spend (USD) and conversion multipliers per day and campaign."""
        cfg, rng, camps = self.cfg, self.rng, _w.CAMPAIGN_LIST
        weekday0 = cfg.start.weekday()
        expected = [
            [
                c.share * _w.WEEKDAY[(weekday0 + d) % 7] * (1 + 0.002 * d)
                * rng.lognormvariate(0.0, 0.08)
                for c in camps
            ]
            for d in range(cfg.days)
        ]  # fmt: skip
        scale = cfg.leads / sum(map(sum, expected))
        counts, spend, conv = [], [], []
        for d, row in enumerate(expected):
            vol = [self._factor(_VOLUME, c, d) * scale for c in camps]
            counts.append([int(e * m + rng.random()) for e, m in zip(row, vol, strict=True)])
            spend.append(
                [
                    e * scale * c.cpl * rng.lognormvariate(0.0, 0.12)
                    * self._factor(("cpl_spike",), c, d)
                    for e, c in zip(row, camps, strict=True)
                ]
            )  # fmt: skip
            conv.append([self._factor(_CONVERSION, c, d) for c in camps])
        return counts, spend, conv

    def _factor(self, kinds: tuple[str, ...], camp: _w.Campaign, day: int) -> float:
        out = 1.0
        for a in self.cfg.anomalies:
            if a.kind in kinds and a.applies(camp.channel, camp.campaign_id, day):
                out *= a.factor
        return out

    def _push(self, ts: int, kind: Kind, key: str, etype: str, body: dict[str, Any]) -> None:
        heapq.heappush(self.heap, (ts, self.seq, kind, key, etype, body))
        self.seq += 1

    def _stamp(self, ts: int) -> str:
        day, rest = divmod(ts, _DAY)
        ds = self.dates.get(day)
        if ds is None:
            ds = self.dates[day] = (self.cfg.start + timedelta(days=day)).isoformat()
        hour, rest = divmod(rest, 3600)
        minute, sec = divmod(rest, 60)
        return f"{ds}T{hour:02d}:{minute:02d}:{sec:02d}Z"

    def events(self) -> Iterator[Emitted]:
        prefix, heap, n = f"ev-{self.cfg.seed}-", self.heap, 0
        for day in range(self.cfg.days + 1):
            if day < self.cfg.days:
                self._plan_day(day)
            end = (day + 1) * _DAY if day < self.cfg.days else 1 << 62
            while heap and heap[0][0] < end:
                ts, _, kind, key, etype, body = heapq.heappop(heap)
                value = {"event_id": f"{prefix}{n}", "event_type": etype,
                         "occurred_at": self._stamp(ts), "schema_version": 1}  # fmt: skip
                value.update(body)
                n += 1
                yield Emitted(kind, key, value)

    def _plan_day(self, day: int) -> None:
        rng, camps, base = self.rng, _w.CAMPAIGN_LIST, day * _DAY
        arrivals: list[tuple[int, int]] = []
        for ci, count in enumerate(self.counts[day]):
            hours = rng.choices(_w.HOURS, cum_weights=_w.HOUR_CUM, k=count)
            arrivals.extend((base + h * 3600 + int(rng.random() * 3600), ci) for h in hours)
        arrivals.sort()
        for ts, ci in arrivals:
            self._lead(ts, camps[ci], self.conv[day][ci])
        ds = self._stamp(base)[:10]
        for camp, usd in zip(camps, self.spend[day], strict=True):
            amount = usd * _w.EUR_PER_USD if camp.currency == "EUR" else usd
            body = {"campaign_id": camp.campaign_id, "channel": camp.channel, "date": ds,
                    "amount": f"{amount:.2f}", "currency": camp.currency}  # fmt: skip
            self._push(base + 23 * 3600 + 55 * 60, "spend", camp.campaign_id, "spend", body)

    def _lead(self, ts: int, camp: _w.Campaign, conv_factor: float) -> None:
        index = self.leads_made
        self.leads_made += 1
        rng = self.lead_rng
        # One stream per lead: drift or a conversion anomaly changes a lead's future
        # without reshuffling every later lead's firmographics.
        rng.seed(self.cfg.seed * 1_000_000_007 + index)
        lead_id = f"ld-{self.cfg.seed}-{index}"
        company = rng.choice(self.companies)
        lead, freemail, weak = _w.lead_fields(rng, camp, company)
        drifted = self.drift_index is not None and index >= self.drift_index
        coefs = _DRIFTS[self.cfg.drift_to] if drifted else _BEFORE
        offset = camp.quality + weak
        journey: list[_j.Touch] = []
        reached: dict[str, float] = {}
        if self.cfg.journeys:
            journey = _j.journey(rng, ts)
            reached = _j.effects(journey)
            offset += _j.INTERCEPT + sum(reached.values())

        def prop(shift: float = 0.0) -> float:
            return min(0.995, _propensity(coefs, lead, freemail, offset - shift) * conv_factor)

        p = prop()
        key_body = {"lead_id": lead_id, **lead}
        self._push(ts, "lead", lead_id, "lead_created", key_body)
        # In a journey the funnel starts once the journey's touches are over.
        stages = _funnel(rng, journey[-1].at if journey else ts, p)
        touch = {"lead_id": lead_id, "channel": camp.channel, "campaign_id": camp.campaign_id}
        if self.cfg.journeys:
            touch = {"lead_id": lead_id, "channel": DIRECT}
            for at, etype, body in _j.bodies(rng, lead_id, journey):
                self._push(at, "touchpoint", lead_id, etype, body)
        for t, etype, url in _touches(rng, ts, p, stages):
            body = touch if url is None else {**touch, "url": url}
            self._push(t, "touchpoint", lead_id, etype, body)
        for t, stage in stages:
            body = {"lead_id": lead_id, "stage": stage}
            if stage == "won":
                body.update(_w.revenue(rng, company))
            self._push(t, "conversion", lead_id, "stage_change", body)
        if rng.random() < 0.03 + 0.1 * p:
            t = ts + 600 + int(rng.expovariate(1 / (4 * _DAY)))
            self._push(t, "lead", lead_id, "lead_updated", _w.updated(rng, key_body, p))
        if self.channel_truth is not None and self.cfg.journeys:
            without = {c: prop(e) for c, e in reached.items()}
            self.channel_truth.update(_j.removal(p, camp.channel, reached, without))
        if self.truth is not None:
            done = {s for _, s in stages}
            self.truth(
                LeadTruth(lead_id, self._stamp(ts), camp.channel, camp.campaign_id, p,
                          "sql" in done, stages[-1][1] if stages else "", drifted)
            )  # fmt: skip


def _rng(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - synthetic data, not secrets


def _after(rng: random.Random, t: int, mean_days: float) -> int:
    return t + 3600 + int(rng.expovariate(1.0 / (mean_days * _DAY)))


def _funnel(rng: random.Random, ts: int, p: float) -> list[tuple[int, str]]:
    """The stage changes of one lead; it reaches ``sql`` with probability ``p``."""
    out: list[tuple[int, str]] = []
    if rng.random() < p:
        t = _after(rng, ts, 2)
        out.append((t, "mql"))
        t = _after(rng, t, 5)
        out.append((t, "sql"))
        r = rng.random()
        if r < 0.55:
            t = _after(rng, t, 7)
            out.append((t, "opportunity"))
            r = rng.random()
            if r < 0.85:
                out.append((_after(rng, t, 20), "won" if r < 0.38 else "lost"))
        elif r < 0.70:
            out.append((_after(rng, t, 10), "lost"))
    elif rng.random() < min(0.9, 1.2 * p + 0.08):
        t = _after(rng, ts, 3)
        out.append((t, "mql"))
        if rng.random() < 0.3:
            out.append((_after(rng, t, 15), "lost"))
    return out


def _touches(
    rng: random.Random, ts: int, p: float, stages: list[tuple[int, str]]
) -> list[tuple[int, str, str | None]]:
    """Engagement after creation: more, and more pricing and demo events, when ``p`` is high."""
    n = min(40, int(rng.expovariate(1.0 / (1.0 + 12.0 * p))))
    weights = (40.0, 6.0 + 40.0 * p, 20.0, 8.0 + 10.0 * p, 8.0, 3.0, 1.0 + 15.0 * p, 0.5)
    out = []
    for etype in rng.choices(_w.TOUCH_TYPES, weights=weights, k=n):
        t = ts + 60 + int(rng.expovariate(1.0 / (3 * _DAY)))
        out.append((t, etype, _w.url(rng, etype)))
    sql = [t for t, s in stages if s == "sql"]
    if sql:  # sales calls the lead once it is qualified
        out.extend((_after(rng, sql[0], 1), "call", None) for _ in range(1 + rng.randrange(3)))
    return out


def _with_noise(events: Iterator[Emitted], cfg: GeneratorConfig) -> Iterator[Emitted]:
    """Add duplicates and bad events; a separate stream keeps the good ones unchanged."""
    rng = _rng(cfg.seed * 7919 + 13)
    bad = 0
    for event in events:
        yield event
        if not isinstance(event.value, dict):
            continue
        if rng.random() < cfg.duplicate_fraction:
            yield Emitted(event.kind, event.key, dict(event.value))
        if rng.random() < cfg.bad_fraction:
            value = _w.spoil(rng, event.kind, dict(event.value), f"ev-{cfg.seed}-bad-{bad}")
            yield Emitted(event.kind, event.key, value, bad=True)
            bad += 1
