"""The typed results of the analytics views (:mod:`reporting.queries` re-exports them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field


class _Return(BaseModel):
    """Money in and out: revenue, spend and the ratios between them and the leads."""

    revenue: float
    spend: float
    cpl: float | None
    cpa: float | None
    roas: float | None
    roi: float | None


class KpiValues(_Return):
    """Key indicators of one period (leads created in it and their outcomes so far)."""

    leads: int
    mql: int
    sql: int
    won: int
    mean_score: float | None
    conversion_rate: float | None


class Kpis(BaseModel):
    """The executive summary: this period, the previous one and the relative change."""

    current: KpiValues
    previous: KpiValues
    change: dict[str, float | None]
    daily: list[dict[str, Any]]


class FunnelStage(BaseModel):
    """One stage: leads that reached it, the rate from the stage before, median days."""

    stage: str
    leads: int
    rate_from_previous: float | None
    median_days_from_previous: float | None


class Funnel(BaseModel):
    """Lead → MQL → SQL → opportunity → won for the leads created in the period."""

    stages: list[FunnelStage]
    lost: int
    overall_rate: float | None


class LeadQuality(BaseModel):
    """Score histogram (twentieths) and band mix by channel."""

    histogram: list[dict[str, Any]]
    bands_by_channel: list[dict[str, Any]]
    scored: int
    mean_score: float | None


class RoiRow(_Return):
    """Spend and return of one channel, campaign or segment."""

    key: str
    channel: str | None
    leads: int
    sql: int
    won: int


class CohortRow(BaseModel):
    """Leads created in one week (Monday) and how many reached each stage so far."""

    week: date
    leads: int
    mql: int
    sql: int
    won: int
    revenue: float
    mql_rate: float | None
    sql_rate: float | None
    won_rate: float | None


class AnomalyRow(BaseModel):
    """One detected anomaly (table ``anomalies``)."""

    anomaly_id: str
    kind: str
    series: str
    dimension: str
    dimension_value: str
    metric: str
    window_start: datetime
    window_end: datetime
    value: float
    expected: float
    expected_low: float
    expected_high: float
    severity: str
    direction: str
    opportunity: bool
    description: str
    detected_at: datetime


class PublishedScores(BaseModel):
    """How the scores sales tools received ranked the leads whose outcome is known.

    Not a model's own (prequential) AUC: each lead's score as published, from the model
    version live when it arrived, cold-start scores included (table ``training_examples``).
    """

    examples: int = Field(0, description="labelled leads scored in the period")
    positives: int = Field(0, description="of them, converted")
    auc: float | None = Field(
        None, description="ROC AUC of their published scores against the outcomes (0.5 is "
        "chance); None without both outcomes"
    )  # fmt: skip


class ModelHealth(BaseModel):
    """Model metrics over time (table ``model_metrics``), champion changes, published scores."""

    metrics: list[dict[str, Any]]
    promotions: list[dict[str, Any]]
    published: PublishedScores = Field(default_factory=PublishedScores)
    #: The published scores against the outcomes, by week of creation: leads labelled,
    #: mean_predicted, observed, calibration (their ratio), logloss, auc. A week's
    #: negatives arrive at its horizon; until then ``observed`` is too high.
    published_by_week: list[dict[str, Any]] = []


class LeadRow(BaseModel):
    """A lead in a drill-down: pseudonymous id, segment, score, reasons, stage. No personal data."""

    lead_id: str
    created_at: datetime
    channel: str
    campaign_id: str
    industry: str
    country: str
    size_bucket: str
    seniority: str
    score: float | None
    band: str
    reasons: list[dict[str, Any]]
    stage: str
    revenue: float | None


class Options(BaseModel):
    """What the filters can choose from, and the range of the data."""

    channels: dict[str, list[str]]
    segments: dict[str, list[str]]
    first_day: date | None
    last_day: date | None
