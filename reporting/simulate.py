"""A simulated market built on the synthetic generator's hidden truth, for grading budget policies.

The world (:func:`world_from_generator`) takes from one run of
:mod:`streaming.synthetic` what it knows and no model does: per paid campaign the
leads and spend of a period at the generator's allocation, the true conversion rate
(mean hidden propensity of its leads), the value of a conversion (won revenue per
conversion), and when conversions arrive after a lead is created (the funnel's
delays). The generator buys leads at a constant price, which no market does, so the
world adds diminishing returns: leads saturate as ``L_max · (1 − exp(−κ · spend))``,
passing through the generator's operating point, with a headroom ``L_max / L_0`` per
campaign type (brand search, retargeting, e-mail lists and fixed events are close to
saturation; broad search and social have room) that varies by seed.

:func:`run` plays a policy for some periods after a warm-up history at the
generator's allocation. Each period the policy sees only what a data team sees:
spend, leads, conversions observed so far by cohort (young cohorts are incomplete)
and won revenue once a cohort is old enough. The return of an allocation is its true
expected revenue. Noise uses common random numbers, so policies are compared on the
same luck (paired by seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from scipy.stats import binom, poisson

from reporting.recommend import SAMPLES, CohortStats, Guardrails, Priors, allocate, fit
from streaming.synthetic import CAMPAIGNS, GeneratorConfig, LeadTruth, generate

__all__ = [
    "HEADROOM",
    "Arm",
    "Observation",
    "Policy",
    "World",
    "keep_current",
    "proportional_to_conversions",
    "recommendation_policy",
    "run",
    "world_from_generator",
]

_EUR_PER_USD = 0.92
_DAY = 86_400.0

#: Leads at saturation over leads at the generator's spend, by campaign (an assumption:
#: finite demand for brand terms, e-mail lists, retargeting pools and event seats).
HEADROOM: Mapping[str, float] = {
    "ps-brand-01": 1.3, "ps-generic-02": 3.0, "ps-competitor-03": 2.5, "ps-retarget-04": 1.5,
    "so-linkedin-01": 3.0, "so-meta-02": 4.0, "so-lookalike-03": 3.0,
    "em-newsletter-01": 1.4, "em-nurture-02": 1.3, "em-product-03": 1.4,
    "ev-conference-01": 1.5, "ev-webinar-02": 3.0, "ev-roadshow-03": 1.5,
    "ev-meetup-04": 2.0, "ev-tradeshow-05": 1.5,
    "pa-reseller-01": 2.0, "pa-cosell-02": 1.8, "pa-marketplace-03": 2.5,
}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """The truth about one paid campaign, per period."""

    campaign_id: str
    channel: str
    spend: float  # the generator's spend (USD) per period
    leads: float  # the generator's leads per period at that spend
    rate: float  # probability that a lead converts (mean hidden propensity)
    value: float  # expected won revenue per conversion (USD)
    headroom: float

    def expected_leads(self, spend: np.ndarray | float) -> np.ndarray:
        """Leads per period at ``spend``: saturating, equal to ``leads`` at ``self.spend``."""
        kappa = -math.log(1.0 - 1.0 / self.headroom) / self.spend
        return np.asarray(self.leads * self.headroom * (1.0 - np.exp(-kappa * np.asarray(spend))))


@dataclass(frozen=True)
class World:
    """Paid campaigns plus how conversions and revenue arrive."""

    arms: tuple[Arm, ...]
    lag: tuple[float, ...]  # share of a cohort's conversions first seen at age 0, 1, ...
    won_share: float  # conversions that become won deals
    value_age: int = 4  # periods after which a cohort's won revenue is known

    @property
    def budget(self) -> float:
        """Total spend per period at the generator's allocation."""
        return sum(a.spend for a in self.arms)

    def expected_return(self, alloc: Mapping[str, float]) -> float:
        """True expected revenue of one period's allocation."""
        return float(
            sum(a.expected_leads(alloc[a.campaign_id]) * a.rate * a.value for a in self.arms)
        )

    def expected_conversions(self, alloc: Mapping[str, float]) -> float:
        """True expected conversions of one period's allocation."""
        return float(sum(a.expected_leads(alloc[a.campaign_id]) * a.rate for a in self.arms))

    def best_allocation(self) -> dict[str, float]:
        """The allocation of the same budget with the highest true expected return (an oracle).

        Marginal return ``A κ exp(−κ s)`` is equalised by bisection on its common value.
        """
        kappa = np.array([-math.log(1.0 - 1.0 / a.headroom) / a.spend for a in self.arms])
        amp = np.array([a.leads * a.headroom * a.rate * a.value for a in self.arms]) * kappa
        low, high = -50.0, 50.0
        for _ in range(200):
            mid = 0.5 * (low + high)
            s = np.maximum(0.0, (np.log(amp) - mid) / kappa)
            low, high = (mid, high) if s.sum() > self.budget else (low, mid)
        s = np.maximum(0.0, (np.log(amp) - high) / kappa)
        s *= self.budget / s.sum()
        return {a.campaign_id: float(x) for a, x in zip(self.arms, s, strict=True)}

    def with_headroom(self, scale: float) -> World:
        """The same world with every campaign's room to grow (headroom − 1) times ``scale``."""
        arms = tuple(replace(a, headroom=max(1.1, 1 + (a.headroom - 1) * scale)) for a in self.arms)
        return replace(self, arms=arms)

    def varied(self, rng: np.random.Generator, spread: float = 0.25) -> World:
        """The same world with each campaign's headroom varied (log-normal ``spread``)."""
        arms = tuple(
            replace(a, headroom=max(1.1, a.headroom * float(rng.lognormal(0.0, spread))))
            for a in self.arms
        )
        return replace(self, arms=arms)


def world_from_generator(
    seed: int = 7, leads: int = 30_000, days: int = 84, period_days: int = 7
) -> World:
    """Campaign truths from one generator run (no anomalies, no drift); periods of ``period_days``.

    Examples
    --------
    >>> w = world_from_generator(leads=3000, days=28)
    >>> len(w.arms), round(sum(w.lag), 6), 0.1 < w.won_share < 0.35
    (18, 1.0, True)
    """
    cfg = GeneratorConfig(seed=seed, leads=leads, days=days)
    camp: dict[str, str] = {}
    created: dict[str, float] = {}
    props: dict[str, list[float]] = {}
    spend: dict[str, float] = {}
    conv: dict[str, int] = {}
    won: dict[str, float] = {}
    lags: list[float] = []
    n_won = 0

    def seen(t: LeadTruth) -> None:
        camp[t.lead_id] = t.campaign_id
        props.setdefault(t.campaign_id, []).append(t.propensity)

    for e in generate(cfg, truth=seen):
        v = e.value
        assert isinstance(v, dict)
        ts = _seconds(v["occurred_at"])
        if e.kind == "lead" and v["event_type"] == "lead_created":
            created[v["lead_id"]] = ts
        elif e.kind == "spend":
            usd = float(v["amount"]) / (_EUR_PER_USD if v["currency"] == "EUR" else 1.0)
            spend[v["campaign_id"]] = spend.get(v["campaign_id"], 0.0) + usd
        elif e.kind == "conversion" and v["stage"] == "sql":
            cid = camp[v["lead_id"]]
            conv[cid] = conv.get(cid, 0) + 1
            lags.append(ts - created[v["lead_id"]])
        elif e.kind == "conversion" and v["stage"] == "won":
            cid = camp[v["lead_id"]]
            usd = float(v["revenue"]) / (_EUR_PER_USD if v["currency"] == "EUR" else 1.0)
            won[cid] = won.get(cid, 0.0) + usd
            n_won += 1
    periods = days / period_days
    total_conv = sum(conv.values())
    pooled_value = sum(won.values()) / total_conv
    arms = []
    for cid, usd in sorted(spend.items()):
        if usd <= 0:
            continue
        n = conv.get(cid, 0)
        # Won revenue per conversion, shrunk toward the pooled value (a finite run is noisy).
        value = (won.get(cid, 0.0) + 50 * pooled_value) / (n + 50)
        channel = next(ch for ch, ids in CAMPAIGNS.items() if cid in ids)
        arms.append(
            Arm(cid, channel, usd / periods, len(props[cid]) / periods,
                float(np.mean(props[cid])), value, HEADROOM.get(cid, 2.0))
        )  # fmt: skip
    return World(tuple(arms), _lag_shares(np.array(lags), period_days * _DAY), n_won / total_conv)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _lag_shares(lags: np.ndarray, period: float, ages: int = 6) -> tuple[float, ...]:
    """Share of conversions first visible at each age, for leads spread evenly over a period."""
    u = (np.arange(200) + 0.5) / 200 * period  # creation times within the period
    done = lags[None, :] + u[:, None]
    cum = [float(np.mean(done <= (k + 1) * period)) for k in range(ages)]
    cum[-1] = 1.0
    return tuple(np.diff([0.0, *cum]).tolist())


@dataclass(frozen=True)
class Observation:
    """What a policy may see before choosing a period's spend: data, never the truth."""

    period: int
    cohorts: tuple[CohortStats, ...]
    current: Mapping[str, float]  # last period's spend per campaign
    conversions_last_period: Mapping[str, int]  # conversions that happened last period
    channels: Mapping[str, str]


Policy = Callable[[Observation], Mapping[str, float]]


def keep_current(obs: Observation) -> Mapping[str, float]:
    """Baseline: spend what was spent last period."""
    return dict(obs.current)


def proportional_to_conversions(obs: Observation) -> Mapping[str, float]:
    """Baseline: the same total, split in proportion to last period's conversions."""
    budget = sum(obs.current.values())
    total = sum(obs.conversions_last_period.get(c, 0) for c in obs.current)
    if total == 0:
        return dict(obs.current)
    return {c: budget * obs.conversions_last_period.get(c, 0) / total for c in obs.current}


@dataclass
class _Cohort:
    arm: int
    period: int
    spend: float
    leads: int
    arrivals: np.ndarray  # conversions first seen at each age
    revenue: float


def run(
    world: World, policy: Policy, seed: int, periods: int = 12, warmup: int = 8
) -> dict[str, list[float]]:
    """Play ``policy`` for ``periods`` after ``warmup`` periods at the generator's allocation.

    Returns per decided period the true expected return and conversions of the
    chosen allocation, and the realised (noisy) conversions.
    """
    arms, ids = world.arms, [a.campaign_id for a in world.arms]
    channels = {a.campaign_id: a.channel for a in arms}
    cohorts: list[_Cohort] = []
    history_rng = np.random.default_rng([seed, 0])
    current = {a.campaign_id: a.spend for a in arms}
    out: dict[str, list[float]] = {"return": [], "conversions": [], "realised": []}
    for t in range(warmup + periods):
        if t < warmup:  # budgets wander a little around the usual plan
            alloc = {a.campaign_id: a.spend * float(history_rng.lognormal(0.0, 0.15)) for a in arms}
            scale = world.budget / sum(alloc.values())
            alloc = {c: s * scale for c, s in alloc.items()}
        else:
            obs = _observe(t, cohorts, ids, channels, current, world.value_age)
            alloc = dict(policy(obs))
            out["return"].append(world.expected_return(alloc))
            out["conversions"].append(world.expected_conversions(alloc))
        made = _simulate_period(world, alloc, t, np.random.default_rng([seed, 1, t]))
        cohorts.extend(made)
        if t >= warmup:
            out["realised"].append(float(sum(c.arrivals.sum() for c in made)))
        current = alloc
    return out


def _simulate_period(
    world: World, alloc: Mapping[str, float], t: int, rng: np.random.Generator
) -> list[_Cohort]:
    # Quantiles of shared uniforms: every policy's allocation meets the same luck.
    u = rng.random((3, len(world.arms)))
    spend = np.array([max(alloc[a.campaign_id], 0.0) for a in world.arms])
    mu = np.array([float(a.expected_leads(s)) for a, s in zip(world.arms, spend, strict=True)])
    rate = np.array([a.rate for a in world.arms])
    n = np.where(mu > 0, poisson.ppf(u[0], np.maximum(mu, 1e-9)), 0).astype(int)
    k = np.where(n > 0, binom.ppf(u[1], np.maximum(n, 1), rate), 0).astype(int)
    w = np.where(k > 0, binom.ppf(u[2], np.maximum(k, 1), world.won_share), 0).astype(int)
    lag = np.array(world.lag)
    made = []
    for i, a in enumerate(world.arms):
        arrivals = rng.multinomial(k[i], lag)
        revenue = w[i] * a.value / world.won_share
        made.append(_Cohort(i, t, float(spend[i]), int(n[i]), arrivals, float(revenue)))
    return made


def _observe(
    t: int, cohorts: list[_Cohort], ids: list[str], channels: Mapping[str, str],
    current: Mapping[str, float], value_age: int,
) -> Observation:  # fmt: skip
    stats, last = [], dict.fromkeys(ids, 0)
    for c in cohorts:
        age = t - 1 - c.period
        cum = (
            np.cumsum(c.arrivals)[: age + 1]
            if age < len(c.arrivals)
            else np.concatenate(
                [np.cumsum(c.arrivals), np.full(age + 1 - len(c.arrivals), c.arrivals.sum())]
            )
        )
        cid = ids[c.arm]
        if age < len(c.arrivals):
            last[cid] += int(c.arrivals[age])
        revenue = c.revenue if age >= value_age else 0.0
        stats.append(
            CohortStats(cid, channels[cid], c.period, c.spend, c.leads,
                        tuple(int(x) for x in cum), revenue)
        )  # fmt: skip
    return Observation(t, tuple(stats), dict(current), last, channels)


def recommendation_policy(
    guardrails: Guardrails | None = None, priors: Priors | None = None, samples: int = SAMPLES,
    seed: int = 0,
) -> Policy:  # fmt: skip
    """The recommendation engine as a policy: fit posteriors to the data, allocate, repeat."""
    g = guardrails or Guardrails()
    rng = np.random.default_rng(seed)

    def policy(obs: Observation) -> Mapping[str, float]:
        return allocate(fit(obs.cohorts, priors), obs.current, g, rng, samples)

    return policy
