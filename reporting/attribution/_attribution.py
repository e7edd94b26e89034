"""Multi-touch attribution over one ClickHouse database, for a period and a model.

:class:`Attribution` reads the period's journeys once (:mod:`._sql`): the
rule-based credits of every model in one pass, the journey cells for the
data-driven models, the leads and the spend. :meth:`Attribution.table` holds
all models; :meth:`AttributionTable.view` gives one as typed rows.

Data-driven credit: the model gives each channel a share of the removal
effects of a stage's journeys; the channel is credited that share of the
stage's conversions (and of the won revenue), and its campaigns split it as
their touches do under the linear model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from reporting.attribution import _sql
from reporting.attribution._markov import PathKey, markov_shares
from reporting.attribution._removal import CellKey, removal_shares
from reporting.attribution._results import (
    MODEL_NAMES,
    AttributionComparison,
    AttributionRow,
    AttributionView,
    CreditMove,
    Model,
    ShareInterval,
)
from reporting.attribution._shares import Shares

# (stage, channel, campaign) -> credit; "revenue" is the won stage's revenue credit
_Credit = dict[tuple[str, str, str], float]
_DATA_DRIVEN: dict[str, Callable[..., Shares]] = {
    "data_driven": removal_shares,
    "markov": markov_shares,
}


@dataclass
class AttributionTable:
    """Every model's credit for one period (build with :meth:`Attribution.table`)."""

    start: date
    end: date
    lookback_days: int
    half_life_days: float
    conversions: dict[str, _Credit]  # model -> credits
    revenue: dict[str, dict[tuple[str, str], float]]  # model -> (channel, campaign) -> revenue
    shares: dict[str, dict[str, Shares]]  # data-driven model -> stage -> shares
    leads: dict[tuple[str, str], int]
    spend: dict[tuple[str, str], float]
    level: float
    channel_of: dict[str, str] = field(default_factory=dict)

    def view(self, model: Model) -> AttributionView:
        """One model's credit by channel and campaign, with spend and return."""
        if model not in self.conversions:
            raise ValueError(f"unknown model {model!r}")
        credit = self.conversions[model]
        revenue = self.revenue[model]
        acc: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * 6)
        for (stage, ch, camp), v in credit.items():
            acc[(ch, camp)][1 + _sql.STAGES.index(stage)] += v
        for key, v in revenue.items():
            acc[key][4] += v
        for key, n in self.leads.items():
            acc[key][0] += n
        for key, v in self.spend.items():
            acc[key][5] += v
        by_channel: dict[str, list[float]] = defaultdict(lambda: [0.0] * 6)
        for (ch, _), values in acc.items():
            by_channel[ch] = [a + b for a, b in zip(by_channel[ch], values, strict=True)]
        total_revenue = sum(v[4] for v in by_channel.values())
        total_won = sum(v[3] for v in by_channel.values())
        campaigns = [_row(camp or "(none)", ch, v, total_revenue, total_won)
                     for (ch, camp), v in acc.items()]  # fmt: skip
        channels = [_row(ch, ch, v, total_revenue, total_won) for ch, v in by_channel.items()]
        intervals = {
            stage: [
                ShareInterval(channel=c, share=round(s.shares[c], 4), low=_round(s.low[c]),
                              high=_round(s.high[c]))
                for c in sorted(s.shares, key=lambda c: -s.shares[c])
            ]
            for stage, s in self.shares.get(model, {}).items()
        }  # fmt: skip
        totals = {stage: 0.0 for stage in _sql.STAGES}
        for (stage, _, _), v in self.conversions["first_touch"].items():
            totals[stage] += v
        totals["revenue"] = sum(self.revenue["first_touch"].values())
        return AttributionView(
            model=model,
            name=MODEL_NAMES[model],
            start=self.start,
            end=self.end,
            lookback_days=self.lookback_days,
            half_life_days=self.half_life_days,
            totals={k: round(v, 2) for k, v in totals.items()},
            channels=sorted(channels, key=_order),
            campaigns=sorted(campaigns, key=_order),
            intervals=intervals,
            interval_level=self.level if model in self.shares else None,
        )

    def compare(self, a: Model, b: Model | None = None) -> AttributionComparison:
        """Model ``a``, optionally ``b``, and the channels whose share moves most."""
        va = self.view(a)
        vb = self.view(b) if b is not None else None
        return AttributionComparison(model=va, compare=vb, moves=moves(va, vb) if vb else [])


def moves(
    a: AttributionView, b: AttributionView, by: Literal["revenue", "sql", "won"] = "revenue"
) -> list[CreditMove]:
    """Channels by how much their share of ``by`` moves from ``a`` to ``b``, most first.

    Shares of won revenue by default (of won deals when no deal had revenue).
    """
    sa, sb = _shares_of(a, by), _shares_of(b, by)
    out = [
        CreditMove(channel=c, share_a=sa.get(c, 0.0), share_b=sb.get(c, 0.0),
                   change=round(sb.get(c, 0.0) - sa.get(c, 0.0), 4))
        for c in sorted(set(sa) | set(sb))
    ]  # fmt: skip
    return sorted(out, key=lambda m: (-abs(m.change), m.channel))


def _shares_of(view: AttributionView, by: str) -> dict[str, float]:
    if by == "revenue":
        return {r.key: r.share for r in view.channels}
    total = sum(getattr(r, by) for r in view.channels)
    return {r.key: round(getattr(r, by) / total, 4) if total else 0.0 for r in view.channels}


def _round(v: float) -> float | None:
    return None if v != v else round(v, 4)  # NaN: no interval


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def _row(key: str, channel: str, v: list[float], revenue: float, won: float) -> AttributionRow:
    leads, sql, opp, wins, rev, spend = v
    share = rev / revenue if revenue else (wins / won if won else 0.0)
    return AttributionRow(
        key=key, channel=channel, leads=int(leads), sql=round(sql, 3),
        opportunities=round(opp, 3), won=round(wins, 3), revenue=round(rev, 2),
        spend=round(spend, 2), share=round(share, 4), cost_per_sql=_ratio(spend, sql),
        cost_per_opportunity=_ratio(spend, opp), cost_per_won=_ratio(spend, wins),
        roi=_ratio(rev - spend, spend),
    )  # fmt: skip


def _order(r: AttributionRow) -> tuple[float, float, str]:
    return (-r.revenue, -r.won, r.key)


class Attribution:
    """Attribution over one ClickHouse database.

    Parameters
    ----------
    client
        A clickhouse-connect client (chDB or a server; read-only is enough).
    database
        The leadstream database.

    One instance per answer, on a client the caller holds for it (the API takes one from
    its pool), so nothing here serialises queries.
    """

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database

    def _rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        result = self.client.query(sql, parameters={"db": self.database, **params})
        return list(result.result_rows)

    def table(
        self,
        start: date,
        end: date,
        lookback_days: int = 90,
        half_life_days: float = 7.0,
        replicates: int = 200,
        level: float = 0.9,
        seed: int = 0,
    ) -> AttributionTable:
        """Every model's credit for conversions from ``start`` to ``end`` (both included).

        Parameters
        ----------
        start, end
            The period (UTC days); conversions in it are attributed.
        lookback_days
            Touches older than this before a conversion do not count.
        half_life_days
            Half-life of the time-decay model.
        replicates, level, seed
            Bootstrap resamples of leads for the data-driven intervals, their
            coverage, and the seed.
        """
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        if lookback_days < 1 or half_life_days <= 0:
            raise ValueError("lookback_days must be >= 1 and half_life_days > 0")
        params = {"start": start, "end": end, "lookback": lookback_days,
                  "half_life": float(half_life_days)}  # fmt: skip
        conversions: dict[str, _Credit] = {m: {} for m in _sql.RULE_MODELS}
        revenue: dict[str, dict[tuple[str, str], float]] = {m: {} for m in _sql.RULE_MODELS}
        channel_of: dict[str, str] = {}
        for row in self._rows(_sql.RULE_CREDITS, params):
            stage, ch, camp = str(row[0]), str(row[1]), str(row[2])
            channel_of[camp] = ch
            for i, m in enumerate(_sql.RULE_MODELS):
                conversions[m][(stage, ch, camp)] = float(row[3 + i])
                if stage == "won":
                    revenue[m][(ch, camp)] = float(row[9 + i])
        paths: dict[str, dict[PathKey, int]] = defaultdict(dict)
        cells: dict[str, dict[CellKey, int]] = defaultdict(lambda: defaultdict(int))
        for stage, lch, later, seq, converted, n in self._rows(_sql.JOURNEY_CELLS, params):
            paths[stage][(tuple(seq), bool(converted))] = int(n)
            cells[stage][(str(lch), tuple(later), bool(converted))] += int(n)
        shares: dict[str, dict[str, Shares]] = {}
        for name, fit in _DATA_DRIVEN.items():
            counts = cells if name == "data_driven" else paths
            shares[name] = {
                stage: fit(counts[stage], replicates=replicates, level=level, seed=seed)
                for stage in _sql.STAGES
            }
            conversions[name], revenue[name] = _spread(shares[name], conversions["linear"],
                                                       revenue["linear"])  # fmt: skip
        leads = {(str(ch), str(camp)): int(n) for ch, camp, n in self._rows(_sql.LEADS, params)}
        spend: dict[tuple[str, str], float] = {}
        for camp, ch, amount in self._rows(_sql.SPEND, {"start": start, "end": end}):
            spend[(channel_of.get(str(camp), str(ch)), str(camp))] = float(amount)
        return AttributionTable(
            start=start, end=end, lookback_days=lookback_days, half_life_days=half_life_days,
            conversions=conversions, revenue=revenue, shares=shares, leads=leads, spend=spend,
            level=level, channel_of=channel_of,
        )  # fmt: skip


def _spread(
    shares: Mapping[str, Shares],
    linear: _Credit,
    linear_revenue: Mapping[tuple[str, str], float],
) -> tuple[_Credit, dict[tuple[str, str], float]]:
    """Channel shares of each stage's total, split over campaigns as linear credit is."""
    credit: _Credit = {}
    split: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    for (stage, ch, camp), v in linear.items():
        split[(stage, ch)][camp] += v
        totals[stage] += v
    for stage, s in shares.items():
        for ch, share in s.shares.items():
            camps = split.get((stage, ch)) or {"": 1.0}
            within = sum(camps.values())
            for camp, v in camps.items():
                credit[(stage, ch, camp)] = totals[stage] * share * v / within
    revenue: dict[tuple[str, str], float] = {}
    won_total = sum(linear_revenue.values())
    won = shares.get("won")
    if won is not None:
        for ch, share in won.shares.items():
            camps = split.get(("won", ch)) or {"": 1.0}
            within = sum(camps.values())
            for camp, v in camps.items():
                revenue[(ch, camp)] = won_total * share * v / within
    return credit, revenue
