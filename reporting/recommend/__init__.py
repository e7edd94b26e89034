"""Budget recommendations: where next period's money should go, and which leads to go after.

Estimates come from the data with their uncertainty (:mod:`._model`: response of leads
to spend with diminishing returns, conversion rate, value per conversion), decisions
sample the posterior and respect guardrails (:mod:`._allocate`), and every
recommendation is explained with its expected effect and confidence (:mod:`._advice`).
:func:`recommendations` runs it all on ClickHouse for a report period; the dashboard
and API call it too. ``leadstream bench recommendations`` grades the policy in a
simulated market (:mod:`reporting.simulate`).
"""

from __future__ import annotations

from reporting.recommend._advice import (
    CampaignAdvice,
    Effect,
    Move,
    Recommendations,
    SegmentAdvice,
    advise,
    recommendations,
)
from reporting.recommend._allocate import SAMPLES, Guardrails, allocate, bounds, optimise
from reporting.recommend._data import weekly_cohorts
from reporting.recommend._model import CampaignPosterior, CohortStats, Priors, fit, maturity

__all__ = [
    "SAMPLES",
    "CampaignAdvice",
    "CampaignPosterior",
    "CohortStats",
    "Effect",
    "Guardrails",
    "Move",
    "Priors",
    "Recommendations",
    "SegmentAdvice",
    "advise",
    "allocate",
    "bounds",
    "fit",
    "maturity",
    "optimise",
    "recommendations",
    "weekly_cohorts",
]
