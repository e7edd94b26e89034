"""Budget recommendations with the return a chosen attribution model gives each campaign.

The recommendation engine's cohorts count, per campaign, the conversions of the
leads the campaign created: first touch by construction. Under another model a
campaign also earns conversions of journeys it touched later, and gives up part
of those of its own leads. Each campaign's conversions and revenue are scaled by
the ratio of its credit under the chosen model to its first-touch credit, over
the same weeks; the lead-response part of the model (leads per money spent) is
unchanged. A campaign with no first-touch credit keeps its cohorts as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from clickhouse_connect.driver.client import Client

from reporting.attribution._attribution import Attribution
from reporting.attribution._results import MODELS
from reporting.recommend._model import CohortStats

#: Stages the attribution models cover (the recommendations may target ``mql`` too).
STAGES = ("sql", "opportunity", "won")


def credit_ratios(
    client: Client, database: str, start: date, end: date, stage: str, model: str
) -> dict[str, float]:
    """Per campaign: its ``stage`` credit under ``model`` over its first-touch credit."""
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}; one of {', '.join(MODELS)}")
    if stage not in STAGES:
        raise ValueError(f"attribution covers the stages {', '.join(STAGES)}, not {stage!r}")
    table = Attribution(client, database).table(start, end, replicates=0)
    first: dict[str, float] = {}
    chosen: dict[str, float] = {}
    for name, out in (("first_touch", first), (model, chosen)):
        for (s, _, campaign), v in table.conversions[name].items():
            if s == stage:
                out[campaign] = out.get(campaign, 0.0) + v
    return {c: chosen.get(c, 0.0) / v for c, v in first.items() if v > 0}


def reweighted(cohorts: Sequence[CohortStats], ratios: dict[str, float]) -> list[CohortStats]:
    """The cohorts with each campaign's conversions and revenue scaled by its ratio.

    Examples
    --------
    >>> c = CohortStats("ps-1", "paid_search", 0, 100.0, 10, (1, 2, 4), 500.0)
    >>> reweighted([c], {"ps-1": 1.5})[0].conversions
    (1.5, 3.0, 6.0)
    """
    out = []
    for c in cohorts:
        r = ratios.get(c.campaign_id)
        if r is None:
            out.append(c)
            continue
        out.append(replace(c, conversions=tuple(k * r for k in c.conversions),
                           revenue=c.revenue * r))  # fmt: skip
    return out
