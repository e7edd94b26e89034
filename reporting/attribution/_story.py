"""The attribution section of the weekly and monthly reports, in plain words and a table.

Which channels earned the period's SQLs depends on the model: the story names
the channel whose share of attributed SQLs moves most between last touch (what
a CRM shows by default) and the data-driven model, with the data-driven share's
bootstrap interval, and the runner-up. Every number is a field of the
attribution results, formatted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from clickhouse_connect.driver.client import Client

from reporting.attribution._attribution import Attribution, AttributionTable, moves
from reporting.attribution._results import MODEL_NAMES, MODELS, CreditMove, Model

#: The models the story compares: what most tools show, and the data-driven one.
BASELINE: Model = "last_touch"
DATA_DRIVEN: Model = "data_driven"


@dataclass(frozen=True)
class AttributionSection:
    """The story, and one row per channel: its share of SQLs under every model."""

    story: str
    columns: list[str]
    rows: list[list[Any]]
    moves: list[CreditMove]


def attribution_section(
    client: Client, database: str, start: date, end: date, noun: str, replicates: int = 200
) -> AttributionSection:
    """The section for conversions from ``start`` to ``end``; ``noun`` is "week" or "month"."""
    table = Attribution(client, database).table(start, end, replicates=replicates)
    return section_from(table, noun)


def section_from(table: AttributionTable, noun: str) -> AttributionSection:
    """The section from computed attribution (see :func:`attribution_section`)."""
    base, dd = table.view(BASELINE), table.view(DATA_DRIVEN)
    found = moves(base, dd, by="sql")
    views = {m: table.view(m) for m in MODELS}
    shares = {m: {r.key: r.sql for r in v.channels} for m, v in views.items()}
    intervals = {i.channel: i for i in dd.intervals.get("sql", [])}
    dd_rows = {r.key: r for r in dd.channels}
    rows = []
    channels = {c for by_channel in shares.values() for c in by_channel}
    for channel in sorted(channels, key=lambda c: (-shares[DATA_DRIVEN].get(c, 0.0), c)):
        interval = intervals.get(channel)
        row = dd_rows.get(channel)
        rows.append([channel, *(_share(shares[m], channel) for m in MODELS),
                     interval.low if interval else None, interval.high if interval else None,
                     row.revenue if row else 0.0, row.spend if row else 0.0,
                     row.roi if row else None])  # fmt: skip
    columns = ["channel", *MODELS, "data_driven_low", "data_driven_high",
               "data_driven_revenue", "spend", "data_driven_roi"]  # fmt: skip
    return AttributionSection(
        _story(found, dd.totals["sql"], intervals, noun), columns, rows, found
    )


def _share(by_channel: dict[str, float], channel: str) -> float:
    total = sum(by_channel.values())
    return round(by_channel.get(channel, 0.0) / total, 4) if total else 0.0


def _story(found: list[CreditMove], sqls: float, intervals: dict[str, Any], noun: str) -> str:
    if not sqls or not found:
        return f"No SQLs to attribute this {noun}."
    top = found[0]
    if abs(top.change) < 0.005:
        return (f"The attribution models agree on this {noun}'s {sqls:,.0f} SQLs: no channel's"
                f" share moves by half a point between {MODEL_NAMES[BASELINE]} and the data-driven"
                " model.")  # fmt: skip
    head = f"Which channels earned this {noun}'s {sqls:,.0f} SQLs depends on the model"
    i = intervals.get(top.channel)
    if i and i.low is not None and i.high is not None:
        within = f" (90% interval {i.low:.1%} to {i.high:.1%})"
    else:  # the data-driven model gives the lead's own visits and calls no credit
        within = f" (it gives {top.channel} touches no credit)"
    text = (
        f"{head}: {MODEL_NAMES[BASELINE]} gives {top.channel} {top.share_a:.1%} of them, the"
        f" data-driven model {top.share_b:.1%}{within}, the largest move of any channel"
    )
    if len(found) > 1 and abs(found[1].change) >= 0.005:
        nxt = found[1]
        text += f"; {nxt.channel} goes from {nxt.share_a:.1%} to {nxt.share_b:.1%}"
    return text + "."
