"""The typed results of attribution (:mod:`reporting.attribution` re-exports them)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel

Model = Literal[
    "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based",
    "data_driven", "markov",
]  # fmt: skip
#: Every model, rule-based first.
MODELS: tuple[Model, ...] = (
    "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based",
    "data_driven", "markov",
)  # fmt: skip
#: Human names of the models, for the dashboard and the reports.
MODEL_NAMES: dict[str, str] = {
    "first_touch": "first touch", "last_touch": "last touch",
    "last_non_direct": "last non-direct touch", "linear": "linear",
    "time_decay": "time decay", "position_based": "position-based (40/20/40)",
    "data_driven": "data-driven (removal effect)", "markov": "Markov chain (removal effect)",
}  # fmt: skip


class AttributionRow(BaseModel):
    """What one channel (or campaign) earned under a model, with its spend and return.

    ``leads`` are the leads it created in the period (every model agrees: only the
    creating touch precedes a lead). ``sql``, ``opportunities`` and ``won`` are
    attributed conversions in the period, ``revenue`` the attributed won revenue;
    costs are spend per attributed conversion, ``roi`` is (revenue - spend) / spend.
    """

    key: str
    channel: str
    leads: int
    sql: float
    opportunities: float
    won: float
    revenue: float
    spend: float
    share: float  # of the period's attributed won revenue (of won deals without revenue)
    cost_per_sql: float | None
    cost_per_opportunity: float | None
    cost_per_won: float | None
    roi: float | None


class ShareInterval(BaseModel):
    """A data-driven channel share with its bootstrap interval over leads."""

    channel: str
    share: float
    low: float | None
    high: float | None


class AttributionView(BaseModel):
    """Attribution of one period under one model, by channel and by campaign."""

    model: Model
    name: str
    start: date
    end: date
    lookback_days: int
    half_life_days: float
    totals: dict[str, float]  # conversions per stage and won revenue in the period
    channels: list[AttributionRow]
    campaigns: list[AttributionRow]
    #: data-driven models: per stage, each channel's share with its interval
    intervals: dict[str, list[ShareInterval]]
    interval_level: float | None


class CreditMove(BaseModel):
    """How a channel's share of won revenue differs between two models."""

    channel: str
    share_a: float
    share_b: float
    change: float  # share_b - share_a, in share points (0.1 = 10 points)


class AttributionComparison(BaseModel):
    """One model, optionally a second, and which channels' credit moves most between them."""

    model: AttributionView
    compare: AttributionView | None
    moves: list[CreditMove]
