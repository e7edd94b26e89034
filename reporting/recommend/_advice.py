"""Recommendations in words: budget moves and segments, each with expected effect and confidence.

:func:`advise` turns posteriors and the current spend into a :class:`Recommendations`
object (the report, the dashboard panel and the API all show it);
:func:`recommendations` does the whole thing from ClickHouse for a report period.
Effects are computed over draws from the posterior: the mean, an 80% interval, and
the probability that the change pays off.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import structlog
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict

from config.settings import Settings
from reporting._period import Period
from reporting.labels import segment_phrase
from reporting.recommend._allocate import Guardrails, allocate
from reporting.recommend._data import weekly_cohorts
from reporting.recommend._model import CampaignPosterior, fit

log = structlog.get_logger(__name__)

_DRAWS = 2000
#: Lead fields campaigns can target (firmographics), unlike behaviour after the lead arrives.
TARGETABLE = ("industry", "country", "seniority", "company_size", "email_is_free")
_LOOKBACK_WEEKS = 12


class Effect(BaseModel):
    """An expected change with its 80% interval and the probability that it is positive."""

    model_config = ConfigDict(frozen=True)

    mean: float
    low: float
    high: float
    probability_positive: float


class CampaignAdvice(BaseModel):
    """One campaign's spend now and recommended, and what the change is expected to bring."""

    campaign_id: str
    channel: str
    current: float
    recommended: float
    change: float
    conversions: Effect
    revenue: Effect | None  # None while revenue per conversion is unknown
    elasticity: float
    conversion_rate: float


class Move(BaseModel):
    """Money moved from one campaign to another, explained."""

    source: str
    source_channel: str
    target: str
    target_channel: str
    amount: float
    conversions: Effect
    revenue: Effect | None  # None while revenue per conversion is unknown
    text: str


class SegmentAdvice(BaseModel):
    """A lead segment to target (or to stop paying for), explained."""

    segment: str
    direction: str
    leads: int
    rate: float
    rate_low: float
    rate_high: float
    lift: float
    text: str


class Recommendations(BaseModel):
    """What to do with next period's budget, and which leads to go after."""

    period_start: date
    period_end: date
    currency: str
    stage: str
    budget: float
    campaigns: list[CampaignAdvice]
    channels: list[dict[str, float | str]]
    moves: list[Move]
    segments: list[SegmentAdvice]
    conversions: Effect | None
    revenue: Effect | None
    summary: str
    guardrails: dict[str, float]
    #: the attribution model that credited campaigns with conversions (their return)
    attribution: str = "first_touch"


def advise(
    posteriors: Sequence[CampaignPosterior],
    current: Mapping[str, float],
    guardrails: Guardrails,
    period: Period,
    *,
    currency: str = "USD",
    stage: str = "sql",
    scale: float = 1.0,
    max_moves: int = 5,
) -> Recommendations:
    """Recommend next period's spend; ``current`` is per week, ``scale`` weeks per period."""
    seed = int.from_bytes(hashlib.sha256(period.key.encode()).digest()[:4], "big")
    rng = np.random.default_rng(seed)
    nxt = period.next()
    known = [p for p in posteriors if current.get(p.campaign_id, 0.0) > 0]
    if len(known) < 2:
        return _empty(period, currency, stage, scale * sum(current.values()), guardrails)
    plan = allocate(known, current, guardrails, rng)
    ids = [p.campaign_id for p in known]
    cur = np.array([current[c] for c in ids])
    new = np.array([plan[c] for c in ids])
    conv, revenue = np.zeros((len(ids), _DRAWS)), np.zeros((len(ids), _DRAWS))
    valued = all(p.value_known for p in known)
    for i, p in enumerate(known):  # change in conversions and revenue over the next period
        k, b, rate, value = p.draw(rng, _DRAWS)
        conv[i] = scale * k * rate * ((new[i] / p.ref_spend) ** b - (cur[i] / p.ref_spend) ** b)
        revenue[i] = conv[i] * value
    campaigns = []
    for i, p in enumerate(known):
        _, elasticity, rate_mean, _ = p.mean()
        campaigns.append(
            CampaignAdvice(
                campaign_id=p.campaign_id, channel=p.channel, current=round(scale * cur[i], 2),
                recommended=round(scale * new[i], 2), change=round(scale * (new[i] - cur[i]), 2),
                conversions=_effect(conv[i]), revenue=_effect(revenue[i]) if valued else None,
                elasticity=round(elasticity, 3), conversion_rate=round(rate_mean, 4),
            )
        )  # fmt: skip
    moves = _moves(known, scale * (new - cur), conv, revenue if valued else None, currency,
                   stage, max_moves)  # fmt: skip
    total_c = _effect(conv.sum(axis=0))
    total_r = _effect(revenue.sum(axis=0)) if valued else None
    budget = float(scale * cur.sum())
    moved = float(0.5 * np.abs(scale * (new - cur)).sum())
    summary = (
        f"For {nxt.label}, move {_money(moved, currency)} of the {_money(budget, currency)} paid"
        f" budget between campaigns: {_signed(total_c.mean)} expected {stage.upper()}s"
        f" (80% interval {_signed(total_c.low)} to {_signed(total_c.high)})"
    ) + (
        f" and {_signed_money(total_r.mean, currency)} expected revenue"
        f" ({_chance(total_r.probability_positive)} probability of more revenue than keeping the current split)."
        if total_r is not None else
        f" ({_chance(total_c.probability_positive)} probability of more {stage.upper()}s than keeping"
        f" the current split). Revenue is not estimated yet: no cohort is old enough for its won"
        f" revenue to count, so this split maximises {stage.upper()}s."
    )  # fmt: skip
    return Recommendations(
        period_start=nxt.start, period_end=nxt.end, currency=currency, stage=stage,
        budget=round(budget, 2), campaigns=sorted(campaigns, key=lambda c: c.change),
        channels=_channels(campaigns), moves=moves, segments=[], conversions=total_c,
        revenue=total_r, summary=summary, guardrails=_guardrails(guardrails),
    )  # fmt: skip


def _empty(
    period: Period, currency: str, stage: str, budget: float, g: Guardrails
) -> Recommendations:
    nxt = period.next()
    return Recommendations(
        period_start=nxt.start, period_end=nxt.end, currency=currency, stage=stage,
        budget=round(budget, 2), campaigns=[], channels=[], moves=[], segments=[],
        conversions=None, revenue=None, guardrails=_guardrails(g),
        summary="Not enough paid campaigns with spend and leads to recommend a new split.",
    )  # fmt: skip


def _guardrails(g: Guardrails) -> dict[str, float]:
    return {k: float(v) for k, v in vars(g).items()}


def _effect(draws: np.ndarray) -> Effect:
    lo, hi = np.quantile(draws, [0.1, 0.9])
    return Effect(
        mean=round(float(draws.mean()), 2), low=round(float(lo), 2), high=round(float(hi), 2),
        probability_positive=round(float((draws > 0).mean()), 3),
    )  # fmt: skip


def _moves(
    known: Sequence[CampaignPosterior], change: np.ndarray, conv: np.ndarray,
    revenue: np.ndarray | None, currency: str, stage: str, limit: int,
) -> list[Move]:  # fmt: skip
    """Pair cuts with increases, largest first; each move gets its share of both effects.

    All pairs are made, then the ``limit`` with the largest expected revenue (conversions
    while revenue is unknown, ``revenue`` None) are kept.
    """
    cuts = [[i, -c] for i, c in enumerate(change) if c < -0.5]
    adds = [[i, c] for i, c in enumerate(change) if c > 0.5]
    cuts.sort(key=lambda x: -x[1])
    adds.sort(key=lambda x: -x[1])
    out: list[Move] = []
    while cuts and adds:
        (s, left_s), (t, left_t) = cuts[0], adds[0]
        amount = min(left_s, left_t)
        fs, ft = amount / -change[s], amount / change[t]
        c = _effect(fs * conv[s] + ft * conv[t])
        r = None if revenue is None else _effect(fs * revenue[s] + ft * revenue[t])
        src, dst = known[int(s)], known[int(t)]
        text = (
            f"Move {_money(amount, currency)} from {src.campaign_id} ({_nice(src.channel)}) to"
            f" {dst.campaign_id} ({_nice(dst.channel)}): {_signed(c.mean)} expected"
            f" {stage.upper()}s (80% interval {_signed(c.low)} to {_signed(c.high)})"
        ) + (
            f", {_signed_money(r.mean, currency)} expected revenue;"
            f" {_chance(r.probability_positive)} probability it pays off."
            if r is not None else
            f"; {_chance(c.probability_positive)} probability of more {stage.upper()}s"
            " (revenue not estimated yet)."
        )  # fmt: skip
        out.append(
            Move(source=src.campaign_id, source_channel=src.channel, target=dst.campaign_id,
                 target_channel=dst.channel, amount=round(float(amount), 2), conversions=c,
                 revenue=r, text=text)
        )  # fmt: skip
        cuts[0][1] -= amount
        adds[0][1] -= amount
        cuts = [x for x in cuts if x[1] > 0.5]
        adds = [x for x in adds if x[1] > 0.5]
    return sorted(out, key=lambda m: -(m.revenue or m.conversions).mean)[:limit]


def _channels(campaigns: Sequence[CampaignAdvice]) -> list[dict[str, float | str]]:
    acc: dict[str, list[float]] = {}
    for c in campaigns:
        a = acc.setdefault(c.channel, [0.0, 0.0, 0.0])
        a[0] += c.current
        a[1] += c.recommended
        a[2] += c.conversions.mean
    return [
        {"channel": ch, "current": round(a[0], 2), "recommended": round(a[1], 2),
         "change": round(a[1] - a[0], 2), "conversions": round(a[2], 2)}
        for ch, a in sorted(acc.items(), key=lambda kv: kv[1][1] - kv[1][0])
    ]  # fmt: skip


def _chance(p: float) -> str:
    """A probability in words that never claims certainty.

    >>> _chance(0.999), _chance(0.861), _chance(0.001)
    ('>99%', '86%', '<1%')
    """
    return ">99%" if p > 0.99 else "<1%" if p < 0.01 else f"{p:.0%}"


def _nice(channel: str) -> str:
    return channel.replace("_", " ")


def _signed(x: float) -> str:
    """A signed count, one decimal below 10.

    >>> _signed(38.2), _signed(-2.26), _signed(0.0)
    ('+38', '-2.3', '+0.0')
    """
    return f"{x:+,.0f}" if abs(x) >= 10 else f"{x:+.1f}"


def _money(x: float, currency: str) -> str:
    """>>> _money(4012.5, "EUR")
    'EUR 4,012'
    """
    return f"{currency} {x:,.0f}"


def _signed_money(x: float, currency: str) -> str:
    return f"{'+' if x >= 0 else '-'}{currency} {abs(x):,.0f}"


def recommendations(
    client: Client, settings: Settings, period: Period, *, weeks: int = _LOOKBACK_WEEKS,
    attribution: str | None = None,
) -> Recommendations:  # fmt: skip
    """Budget and segment recommendations for the period after ``period``, from ClickHouse.

    The estimates use the ``weeks`` whole weeks up to the end of ``period``; the
    current spend is the mean weekly spend of the weeks in ``period``. A campaign's
    return is what ``attribution`` (default: ``reports.attribution_model``) credits it with.
    """
    cfg = settings.reports
    g = Guardrails(cfg.max_shift, cfg.max_increase, cfg.max_decrease, cfg.floor)
    stage = settings.models.target_stage
    # Whole weeks ending on the period's last day (a month's cohorts may start mid-week).
    cohorts = weekly_cohorts(client, settings.clickhouse.database, period.end, weeks, stage)
    model = attribution or cfg.attribution_model
    if model != "first_touch":
        from reporting.attribution import credit_ratios, reweighted

        start = period.end - timedelta(days=7 * weeks - 1)
        db = settings.clickhouse.database
        cohorts = reweighted(cohorts, credit_ratios(client, db, start, period.end, stage, model))
    recent = max(1, math.ceil(period.days / 7))
    last = max((c.period for c in cohorts), default=0)
    current: dict[str, float] = {}
    for c in cohorts:
        if c.period > last - recent:
            current[c.campaign_id] = current.get(c.campaign_id, 0.0) + c.spend / recent
    posteriors = fit(cohorts)
    out = advise(posteriors, current, g, period, currency=cfg.currency, stage=stage,
                 scale=period.days / 7)  # fmt: skip
    out.segments = _segments(client, settings, period)
    out.attribution = model
    return out


def _segments(client: Client, settings: Settings, period: Period) -> list[SegmentAdvice]:
    """Segments that convert clearly better (target) or worse (avoid), from reporting.insights."""
    from reporting.insights import segment_insights

    try:
        end = datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=UTC)
        found = segment_insights(
            client, settings.clickhouse.database, settings.models, until=end, as_of=end,
            pairs=False, fields=TARGETABLE, limit=50,
        )  # fmt: skip
    except Exception as exc:  # advisory: a report without segments beats no report
        log.warning("recommend.segments_failed", error=str(exc)[:300])
        return []
    out = []
    chosen = [s for s in found.segments if s.significant]
    for direction, verb in (("higher", "Target"), ("lower", "Spend less on")):
        for s in [s for s in chosen if s.direction == direction][:3]:
            name = segment_phrase(s.fields, s.values)
            text = (
                f"{verb} {name}: {s.rate:.1%} of these leads convert (95% interval"
                f" {s.rate_low:.1%}–{s.rate_high:.1%}), {s.lift:.2f}× the average of"
                f" {found.base_rate:.1%}, over {s.leads:,} leads."
            )
            out.append(
                SegmentAdvice(segment=name, direction=direction, leads=s.leads, rate=s.rate,
                              rate_low=s.rate_low, rate_high=s.rate_high, lift=s.lift, text=text)
            )  # fmt: skip
    return out
