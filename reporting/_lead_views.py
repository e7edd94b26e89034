"""The lead drill-down, the filter options and the live view of :class:`reporting.queries.Analytics`.

A mixin: :class:`LeadViews` reads through the class's ``_rows``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from reporting import _sql
from reporting._results import LeadRow, Options

if TYPE_CHECKING:
    from reporting.queries import Filters


class LeadViews:
    """Drill-down, options and live views; mixed into ``Analytics``."""

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        raise NotImplementedError  # Analytics runs the query

    def leads(self, f: Filters, limit: int = 100) -> list[LeadRow]:
        """The best-scored leads of the period that match the filters (drill-down)."""
        params = {**f.params(), **_span(f), "limit": limit}
        if f.segments() or not f.channel:
            sql = _sql.LEADS_FACTS.format(
                facts=_sql.FACTS,
                where=_sql.where(f.set_filters(), _sql.FACTS_FILTERS,
                                 "toDate(created_at) BETWEEN {start:Date} AND {end:Date}"),
            )  # fmt: skip
            rows = self._rows(sql, params)
        else:
            names = [n for n in f.set_filters() if n in _sql.ROLLUP_FILTERS]
            sql = _sql.TOP_SCORED.format(
                where=_sql.where(names, _sql.ROLLUP_FILTERS,
                                 "occurred_at >= {since:DateTime64(3)} AND occurred_at < {until:DateTime64(3)}"),
            )  # fmt: skip
            ids = [r[0] for r in self._rows(sql, params)]
            if not ids:
                return []
            rows = self._rows(_sql.LEADS_BY_ID.format(facts=_sql.FACTS), {"ids": ids})
            rows.sort(key=lambda r: (-(r[8] or 0.0), r[0]))
        return [_lead_row(r) for r in rows[:limit]]

    def options(self) -> Options:
        """Channels with their campaigns, segment values and the data's first and last day."""
        channels: dict[str, set[str]] = defaultdict(set)
        segments: dict[str, list[str]] = {}
        first: date | None = None
        last: date | None = None
        dims = {"industry": "industry", "country": "country", "size": "size_bucket",
                "seniority": "seniority"}  # fmt: skip
        for dim, value, lo, hi in self._rows(_sql.OPTIONS, {}):
            if dim == "all":
                first, last = lo, hi
            elif dim in dims and value:
                segments.setdefault(dims[dim], []).append(str(value))
        pairs = self._rows(
            "SELECT DISTINCT channel, campaign_id FROM {db:Identifier}.leads_daily "
            "WHERE dim = 'all'",
            {},
        )
        for ch, camp in pairs:
            channels[str(ch)].add(str(camp))
        return Options(
            channels={k: sorted(v) for k, v in sorted(channels.items())},
            segments={k: sorted(v) for k, v in sorted(segments.items())},
            first_day=first, last_day=last,
        )  # fmt: skip

    def live(self, hours: int = 48) -> list[dict[str, Any]]:
        """New leads per hour over the last ``hours`` of data (live, from leads_hourly)."""
        sql = _sql.LIVE_HOURLY.format(
            where="hour >= (SELECT max(hour) FROM {db:Identifier}.leads_hourly) - toIntervalHour({hours:UInt32})"
        )
        return [{"hour": h, "leads": int(n)} for h, n in self._rows(sql, {"hours": hours})]


def _span(f: Filters) -> dict[str, datetime]:
    since = datetime.combine(f.start, time(0), tzinfo=UTC)
    return {"since": since, "until": datetime.combine(f.end + timedelta(1), time(0), tzinfo=UTC)}


def _lead_row(r: Sequence[Any]) -> LeadRow:
    (lead_id, created_at, channel, campaign, industry, country, size, seniority, score, band,
     reasons, _version, mql_at, sql_at, opp_at, won_at, lost_at, revenue, _reached) = r  # fmt: skip
    stage = next(
        (name for name, at in (("won", won_at), ("lost", lost_at), ("opportunity", opp_at),
                               ("sql", sql_at), ("mql", mql_at)) if at is not None),
        "lead",
    )  # fmt: skip
    parsed = orjson.loads(reasons) if reasons else []
    return LeadRow(
        lead_id=lead_id, created_at=created_at, channel=channel, campaign_id=campaign,
        industry=industry, country=country, size_bucket=size, seniority=seniority,
        score=score if band != "-" else None, band=band,
        reasons=[{k: v for k, v in x.items() if k in ("feature", "value", "contribution", "text")}
                 for x in parsed if isinstance(x, dict)],
        stage=stage, revenue=revenue,
    )  # fmt: skip
