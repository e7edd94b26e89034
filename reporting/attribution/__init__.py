"""Multi-touch attribution: what each channel and campaign contributed, under a chosen model.

Rule-based models (first touch, last touch, last non-direct, linear, time decay,
position-based 40/20/40) run in ClickHouse SQL over the journeys up to each
conversion; two data-driven models (counterfactual removal effects of a fitted
conversion model, and Markov-chain removal effects) fit the journeys of the
period's leads and carry bootstrap intervals over leads.
"""

from __future__ import annotations

from reporting.attribution._attribution import Attribution, AttributionTable, moves
from reporting.attribution._markov import markov_shares
from reporting.attribution._recommend import credit_ratios, reweighted
from reporting.attribution._removal import removal_shares
from reporting.attribution._results import (
    MODEL_NAMES,
    MODELS,
    AttributionComparison,
    AttributionRow,
    AttributionView,
    CreditMove,
    Model,
    ShareInterval,
)
from reporting.attribution._shares import Shares
from reporting.attribution._story import AttributionSection, attribution_section, section_from

__all__ = [
    "MODELS",
    "MODEL_NAMES",
    "Attribution",
    "AttributionComparison",
    "AttributionRow",
    "AttributionSection",
    "AttributionTable",
    "AttributionView",
    "CreditMove",
    "Model",
    "ShareInterval",
    "Shares",
    "attribution_section",
    "credit_ratios",
    "markov_shares",
    "moves",
    "removal_shares",
    "reweighted",
    "section_from",
]
