"""What the data says about each campaign, with its uncertainty.

Three estimates per paid campaign, each a posterior that can be sampled:

- leads per period as a function of spend, ``leads = exp(a) · (spend / ref)^b``: a
  Bayesian log-log regression (normal prior on the elasticity ``b``, weak prior on
  ``a``, noise from Poisson counts plus a little extra), so diminishing returns are
  learned from the spend changes the data contains and assumed from the prior
  otherwise;
- conversion rate (leads reaching the target stage): a Beta posterior shrunk toward
  the pooled rate; young cohorts count with their expected maturity, estimated from
  the data by chain ladder (how cohorts' counts grew from one age to the next);
- value per conversion: won revenue per conversion of mature cohorts, shrunk toward
  the pooled value, with a log-normal spread that narrows with the evidence. While no
  cohort is old enough for its won revenue to count (``value_age`` periods) and has
  conversions, the value is unknown: every conversion then counts as 1 (the split
  maximises conversions) and ``value_known`` is False, so no revenue is claimed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CampaignPosterior", "CohortStats", "Priors", "fit", "maturity"]


@dataclass(frozen=True)
class CohortStats:
    """One campaign's leads created in one period, as observed now.

    Parameters
    ----------
    campaign_id, channel
        The campaign and its channel.
    period
        Index of the period the leads were created in (larger is later).
    spend
        Money spent on the campaign in that period.
    leads
        Leads created in that period.
    conversions
        Cumulative conversions of these leads observed by the end of the period,
        one period later, and so on (``conversions[k]`` at age ``k``), up to now.
    revenue
        Won revenue of these leads observed so far.
    """

    campaign_id: str
    channel: str
    period: int
    spend: float
    leads: int
    conversions: tuple[float, ...]  # counts; fractional when an attribution model shares them
    revenue: float = 0.0

    @property
    def age(self) -> int:
        """Whole periods since this cohort's period ended."""
        return len(self.conversions) - 1


@dataclass(frozen=True)
class Priors:
    """Prior beliefs, used where the data says little.

    Parameters
    ----------
    elasticity, elasticity_sd
        Normal prior on the spend elasticity of leads (diminishing returns below 1).
    rate_strength
        Pseudo-leads of the pooled conversion rate each campaign starts from.
    value_strength
        Pseudo-conversions of the pooled value each campaign starts from.
    value_age
        Age (periods) from which a cohort's won revenue is taken as complete.
    extra_noise
        Log-scale noise of lead counts beyond Poisson (market fluctuation).
    memory
        Weight of a period's lead count in the response fit, per period of age: the
        response is a local approximation, so recent spend levels count more.
    """

    elasticity: float = 0.6
    elasticity_sd: float = 0.2
    rate_strength: float = 30.0
    value_strength: float = 40.0
    value_age: int = 4
    extra_noise: float = 0.08
    memory: float = 1.0


@dataclass
class CampaignPosterior:
    """Posterior of one campaign's response, conversion rate and value per conversion."""

    campaign_id: str
    channel: str
    ref_spend: float  # the spend the response is centred on (its recent mean)
    coef_mean: np.ndarray  # (a, b)
    coef_cov: np.ndarray
    rate_alpha: float
    rate_beta: float
    value_mean: float
    value_sd_log: float
    observed: dict[str, float] = field(default_factory=dict)
    value_known: bool = True  # False: no mature revenue yet, ``value_mean`` is 1 per conversion

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        """``n`` joint draws: (scale of leads at ``ref_spend``, elasticity, rate, value)."""
        ab = rng.multivariate_normal(self.coef_mean, self.coef_cov, size=n)
        b = np.clip(ab[:, 1], 0.05, 0.97)
        rate = rng.beta(self.rate_alpha, self.rate_beta, size=n)
        value = self.value_mean * np.exp(
            rng.normal(-0.5 * self.value_sd_log**2, self.value_sd_log, size=n)
        )
        return np.exp(ab[:, 0]), b, rate, value

    def mean(self) -> tuple[float, float, float, float]:
        """Posterior means of (scale, elasticity, rate, value)."""
        a, b = self.coef_mean
        var_a = float(self.coef_cov[0, 0])
        rate = self.rate_alpha / (self.rate_alpha + self.rate_beta)
        return math.exp(a + var_a / 2), float(np.clip(b, 0.05, 0.97)), rate, self.value_mean


def maturity(cohorts: Sequence[CohortStats], max_age: int = 8) -> list[float]:
    """Share of a cohort's final conversions observed at each age (chain ladder).

    The development factor from age k to k+1 is the sum of counts at age k+1 over
    the sum at age k, over cohorts observed at both ages; maturity at age k is
    the product of the factors after it, inverted. Ages beyond the data count as mature.

    Examples
    --------
    >>> cs = [CohortStats("c", "x", p, 1.0, 100, (5, 8, 10, 10)[: 4 - p]) for p in range(4)]
    >>> [round(m, 2) for m in maturity(cs, max_age=3)]
    [0.5, 0.8, 1.0, 1.0]
    """
    factors = []
    for k in range(max_age):
        num = sum(c.conversions[k + 1] for c in cohorts if c.age > k)
        den = sum(c.conversions[k] for c in cohorts if c.age > k)
        factors.append(num / den if den > 0 and num >= den else 1.0)
    out = [1.0] * (max_age + 1)
    for k in range(max_age - 1, -1, -1):
        out[k] = out[k + 1] / factors[k]
    return out


def fit(
    cohorts: Sequence[CohortStats], priors: Priors | None = None, recent: int = 4
) -> list[CampaignPosterior]:
    """Posteriors for every campaign that has spend in ``cohorts``.

    ``recent`` periods set each campaign's reference spend (its recent mean).

    Examples
    --------
    >>> cs = [CohortStats("c1", "x", p, 100.0 * (1 + p % 2), 50 + 20 * (p % 2), (6, 9, 10), 500.0)
    ...       for p in range(8)]
    >>> post = fit(cs)[0]
    >>> post.campaign_id, round(post.mean()[1], 1), round(post.rate_alpha / (post.rate_alpha + post.rate_beta), 2)
    ('c1', 0.5, 0.17)
    """
    pr = priors or Priors()
    paid = [c for c in cohorts if c.spend > 0]
    if not paid:
        return []
    mat = maturity(paid)
    pooled_rate, pooled_value = _pooled(paid, mat, pr.value_age)
    out = []
    for cid in sorted({c.campaign_id for c in paid}):
        rows = sorted((c for c in paid if c.campaign_id == cid), key=lambda c: c.period)
        out.append(_campaign(rows, mat, pr, pooled_rate, pooled_value, recent))
    return out


def _pooled(
    cohorts: Sequence[CohortStats], mat: list[float], value_age: int
) -> tuple[float, float | None]:
    conv = sum(c.conversions[-1] for c in cohorts)
    exposure = sum(c.leads * _mat(mat, c.age) for c in cohorts)
    old = [c for c in cohorts if c.age >= value_age]
    old_conv = sum(c.conversions[-1] for c in old)
    value = sum(c.revenue for c in old) / old_conv if old_conv else None
    return (conv + 1.0) / (exposure + 2.0), value


def _mat(mat: list[float], age: int) -> float:
    return mat[min(age, len(mat) - 1)]


def _campaign(
    rows: list[CohortStats],
    mat: list[float],
    pr: Priors,
    pooled_rate: float,
    pooled_value: float | None,
    recent: int,
) -> CampaignPosterior:
    spend = np.array([c.spend for c in rows])
    leads = np.array([c.leads for c in rows], dtype=float)
    ref = float(np.mean(spend[-recent:]))
    # Log-log regression with known noise: Poisson variance 1/leads on the log scale.
    x = np.column_stack([np.ones(len(rows)), np.log(spend / ref)])
    y = np.log(np.maximum(leads, 0.5))
    w = 1.0 / (1.0 / np.maximum(leads, 1.0) + pr.extra_noise**2)
    w = w * pr.memory ** (rows[-1].period - np.array([c.period for c in rows]))
    prior_mean = np.array([float(np.log(max(np.mean(leads[-recent:]), 0.5))), pr.elasticity])
    prior_prec = np.diag([1.0, 1.0 / pr.elasticity_sd**2])
    prec = prior_prec + (x.T * w) @ x
    cov = np.linalg.inv(prec)
    mean = cov @ (prior_prec @ prior_mean + (x.T * w) @ y)
    conv = sum(c.conversions[-1] for c in rows)
    exposure = sum(c.leads * _mat(mat, c.age) for c in rows)
    alpha = pr.rate_strength * pooled_rate + conv
    beta = pr.rate_strength * (1 - pooled_rate) + max(exposure - conv, 0.0)
    old = [c for c in rows if c.age >= pr.value_age]
    old_conv = sum(c.conversions[-1] for c in old)
    n = pr.value_strength + old_conv
    if pooled_value is None:  # no mature revenue anywhere: rank by conversions alone
        value = 1.0
    else:
        value = (pr.value_strength * pooled_value + sum(c.revenue for c in old)) / n
    # Revenue per conversion is mostly zeros and a heavy tail: coefficient of variation ~2.
    observed = {
        "spend": float(spend[-recent:].sum()),
        "leads": float(leads[-recent:].sum()),
        "conversions": float(sum(c.conversions[-1] for c in rows[-recent:])),
        "periods": float(min(recent, len(rows))),
    }
    return CampaignPosterior(
        rows[0].campaign_id, rows[0].channel, ref, mean, cov, alpha, beta, value,
        2.0 / math.sqrt(n) if pooled_value is not None else 0.0, observed,
        value_known=pooled_value is not None,
    )  # fmt: skip
