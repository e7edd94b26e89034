"""The analytics views behind the dashboard, the JSON API and the reports.

:class:`Analytics` answers each view for a :class:`Filters` (date range,
channel, campaign, segment fields, score band) with typed results. Queries are
fixed SQL texts with server-side parameters (:mod:`reporting._sql`); a filter
only chooses which fixed fragments are added.

Sources (docs/analytics-store.md): cohort numbers (leads, stages reached,
revenue, band mix) come from the ``funnel_daily`` rollup, or from
``funnel_segments_daily`` when one segment field is filtered or grouped on; two
or more segment fields read the per-lead ``lead_facts`` table. Spend comes from
the ``spend`` table; under a segment or band filter a campaign's spend is shared
out by the leads it brought in each group. Outcomes are attributed to the lead's creation
day (cohorts), so a period's revenue grows as its leads convert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Literal

from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict, Field, model_validator

from reporting import _sql
from reporting._lead_views import LeadViews, _span
from reporting._model_views import ModelViews
from reporting._results import (
    AnomalyRow,
    CohortRow,
    Funnel,
    FunnelStage,
    Kpis,
    KpiValues,
    LeadQuality,
    LeadRow,
    ModelHealth,
    Options,
    RoiRow,
)
from reporting.pool import ClientPool

__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "MAX_DAYS",
    "SEGMENT_FIELDS",
    "Analytics",
    "AnomalyRow",
    "Band",
    "CohortRow",
    "Filters",
    "Funnel",
    "FunnelStage",
    "KpiValues",
    "Kpis",
    "LeadQuality",
    "LeadRow",
    "ModelHealth",
    "Options",
    "RoiRow",
]

SEGMENT_FIELDS: tuple[str, ...] = ("industry", "country", "size_bucket", "seniority")
Band = Literal["A", "B", "C", "D"]
RoiBy = Literal["channel", "campaign_id", "industry", "country", "size_bucket", "seniority", "band"]
_VALUE = r"^[A-Za-z0-9_.:+\- ]{1,80}$"
_STAGES = ("leads", "mql", "sql", "opportunity", "won")
#: The group of spend on campaigns that brought no leads in the period.
UNATTRIBUTED = "(no leads)"
#: The longest range a view covers, in days.
MAX_DAYS = 3660
#: The days a view can cover. With the longest range, the previous period of a view
#: still starts after 1970-01-01, the first day of ClickHouse's ``Date``, and every
#: day formats as a four-digit year (the driver binds year 999 as ``999-…``).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)


class Filters(BaseModel):
    """What a view covers: leads created from ``start`` to ``end`` (both included, UTC).

    Examples
    --------
    >>> f = Filters(start=date(2026, 2, 1), end=date(2026, 2, 28), channel="email")
    >>> p = f.previous()
    >>> (p.start.isoformat(), p.end.isoformat(), p.channel)
    ('2026-01-04', '2026-01-31', 'email')
    >>> f.set_filters()
    ['channel']
    >>> Filters(start=date(999, 12, 2), end=date(2026, 1, 1))
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Filters
      Value error, start 0999-12-02 is outside 2000-01-01 to 2099-12-31 ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: date
    end: date
    channel: str | None = Field(None, pattern=_VALUE)
    campaign_id: str | None = Field(None, pattern=_VALUE)
    industry: str | None = Field(None, pattern=_VALUE)
    country: str | None = Field(None, pattern=_VALUE)
    size_bucket: str | None = Field(None, pattern=_VALUE)
    seniority: str | None = Field(None, pattern=_VALUE)
    band: Band | None = None

    @model_validator(mode="after")
    def _range(self) -> Filters:
        for name, day in (("start", self.start), ("end", self.end)):
            if not FIRST_DAY <= day <= LAST_DAY:
                raise ValueError(f"{name} {day} is outside {FIRST_DAY} to {LAST_DAY}")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if (self.end - self.start).days >= MAX_DAYS:
            raise ValueError(f"a range spans at most {MAX_DAYS} days")
        return self

    def previous(self) -> Filters:
        """The same filters over the period of the same length just before."""
        days = (self.end - self.start).days + 1
        return self.model_copy(
            update={"start": self.start - timedelta(days=days), "end": self.start - timedelta(1)}
        )

    def set_filters(self) -> list[str]:
        """Names of the dimension filters that are set, in a fixed order."""
        names = ("channel", "campaign_id", *SEGMENT_FIELDS, "band")
        return [n for n in names if getattr(self, n) is not None]

    def segments(self) -> list[str]:
        """The segment-field filters that are set (they need the per-lead table)."""
        return [n for n in SEGMENT_FIELDS if getattr(self, n) is not None]

    def params(self) -> dict[str, Any]:
        """Server-side parameters: the range and every filter that is set."""
        out: dict[str, Any] = {"start": self.start, "end": self.end}
        out.update({n: getattr(self, n) for n in self.set_filters()})
        return out


# (day, campaign) -> group -> [leads, mql, sql, opportunity, won, lost, revenue, score_sum]
_Rows = dict[tuple[date, str], dict[str, list[float]]]


class Analytics(LeadViews, ModelViews):
    """The views over one ClickHouse database.

    Parameters
    ----------
    client
        A clickhouse-connect client (chDB or a server; read-only is enough).
    database
        The leadstream database.
    pool
        The clients queries run on (:class:`reporting.pool.ClientPool`); by default
        ``client`` itself, shared by every caller.
    """

    def __init__(self, client: Client, database: str, pool: ClientPool | None = None) -> None:
        self.client = client
        self.database = database
        self.pool = pool or ClientPool(client, exclusive=False)
        self._channels: dict[str, str] = {}  # campaign -> channel, learnt from the rows read

    # -- plumbing -------------------------------------------------------------------

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
        with self.pool.client() as client:
            result = client.query(sql, parameters={"db": self.database, **params})
        return list(result.result_rows)

    def watermark(self) -> str:
        """Changes whenever data lands in a table a view reads (the cache key uses it)."""
        blocks = self._rows(_sql.WATERMARK, {"database": self.database})
        funnel = self._rows(_sql.FUNNEL_CHECKSUM, {})
        check = "-".join(str(v) for v in funnel[0]) if funnel else "-"
        return f"{int(blocks[0][0] or 0) if blocks else 0}:{check}"

    def refresh(self) -> None:
        """Rebuild the cohort rollups now and wait for them (tests and benchmarks)."""
        with self.pool.client() as client:
            for view in ("funnel_daily_mv", "funnel_segments_daily_mv"):
                client.command(f"SYSTEM REFRESH VIEW {self.database}.{view}")
                client.command(f"SYSTEM WAIT VIEW {self.database}.{view}")

    @staticmethod
    def _segment_dim(f: Filters, group: str) -> str | None:
        """The one segment field a query involves (filter or grouping), if exactly one."""
        fields = set(f.segments()) | ({group} if group in SEGMENT_FIELDS else set())
        return fields.pop() if len(fields) == 1 else None

    def _cohort_rows(self, f: Filters, group: str) -> _Rows:
        """Per (day, campaign) and group: stage counts, revenue and score sum."""
        names = f.set_filters()
        base = "day BETWEEN {start:Date} AND {end:Date}"
        params = f.params()
        dim = self._segment_dim(f, group)
        if dim is not None:
            params["dim"] = dim
            sql = _sql.COHORT_ROWS_ROLLUP.format(
                table=_sql.COHORT_TABLES[True], group=_sql.SEGMENT_GROUPS[group],
                where=_sql.where(names, _sql.SEGMENT_FILTERS, base + " AND dim = {dim:String}"),
            )  # fmt: skip
        elif f.segments() or group in SEGMENT_FIELDS:
            sql = _sql.COHORT_ROWS_FACTS.format(
                facts=_sql.FACTS, group=_sql.FACTS_GROUPS[group],
                where=_sql.where(names, _sql.FACTS_FILTERS, base.replace("day", "toDate(created_at)")),
            )  # fmt: skip
        else:
            sql = _sql.COHORT_ROWS_ROLLUP.format(
                table=_sql.COHORT_TABLES[False], group=_sql.ROLLUP_GROUPS[group],
                where=_sql.where(names, _sql.ROLLUP_FILTERS, base),
            )  # fmt: skip
        out: _Rows = defaultdict(dict)
        for day, campaign, channel, g, *values in self._rows(sql, params):
            out[(day, campaign)][str(g)] = [float(v) for v in values]
            self._channels[campaign] = channel
        return out

    def _spend(
        self, f: Filters, rows: _Rows, group: str
    ) -> dict[tuple[date, str], dict[str, float]]:
        """Spend per (day, campaign) and group.

        Spend is known per campaign and day. Grouped by channel or campaign it is
        exact; by band or segment, or under such a filter, a campaign's spend is
        shared out in proportion to the leads it brought in each group over the period.
        """
        names = [n for n in f.set_filters() if n in _sql.SPEND_FILTERS]
        sql = _sql.SPEND.format(
            where=_sql.where(names, _sql.SPEND_FILTERS, "date BETWEEN {start:Date} AND {end:Date}")
        )
        spend = self._rows(sql, f.params())
        out: dict[tuple[date, str], dict[str, float]] = {}
        if not (f.segments() or f.band) and group in ("none", "channel", "campaign_id"):
            for day, campaign, channel, amount in spend:
                self._channels.setdefault(campaign, channel)
                key = {"none": "", "channel": channel, "campaign_id": campaign}[group]
                out[(day, campaign)] = {key: float(amount)}
            return out
        # Shares over the whole period: a campaign-day without leads still has its spend
        # shared out like the rest of the campaign's spend.
        totals = {c: float(n) for c, n in self._rows(_sql.COHORT_TOTALS, f.params())}
        matched: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for (_, c), groups in rows.items():
            for g, v in groups.items():
                matched[c][g] += v[0]
        for day, campaign, channel, amount in spend:
            self._channels.setdefault(campaign, channel)
            total = totals.get(campaign, 0.0)
            if total:
                out[(day, campaign)] = {
                    g: float(amount) * n / total for g, n in matched[campaign].items()
                }
            elif not (f.segments() or f.band):  # no leads at all: spend nobody brought in
                out[(day, campaign)] = {UNATTRIBUTED: float(amount)}
        return out

    # -- views ----------------------------------------------------------------------

    def kpis(self, f: Filters) -> Kpis:
        """Key indicators of the period and the one before, with the relative change."""
        current, daily = self._kpi_values(f, with_daily=True)
        previous, _ = self._kpi_values(f.previous(), with_daily=False)
        change = {
            name: _change(getattr(current, name), getattr(previous, name))
            for name in KpiValues.model_fields
        }
        return Kpis(current=current, previous=previous, change=change, daily=daily)

    def _kpi_values(self, f: Filters, with_daily: bool) -> tuple[KpiValues, list[dict[str, Any]]]:
        rows = self._cohort_rows(f, "none")
        spend = self._spend(f, rows, "none")
        sums = [0.0] * 8
        per_day: dict[date, list[float]] = defaultdict(lambda: [0.0] * 4)
        for (day, _), groups in rows.items():
            for v in groups.values():
                sums = [a + b for a, b in zip(sums, v, strict=True)]
                d = per_day[day]
                d[0] += v[0]
                d[1] += v[4]
                d[2] += v[6]
        total_spend = 0.0
        for (day, _), shares in spend.items():
            amount = sum(shares.values())
            total_spend += amount
            per_day[day][3] += amount
        leads, mql, sql, _, won, _, revenue, score_sum = sums
        values = KpiValues(
            leads=int(leads), mql=int(mql), sql=int(sql), won=int(won),
            revenue=round(revenue, 2), spend=round(total_spend, 2),
            cpl=_ratio(total_spend, leads), cpa=_ratio(total_spend, won),
            roas=_ratio(revenue, total_spend),
            roi=_ratio(revenue - total_spend, total_spend) if total_spend else None,
            mean_score=_ratio(score_sum, leads, 4), conversion_rate=_ratio(sql, leads, 4),
        )  # fmt: skip
        daily = []
        if with_daily:
            day = f.start
            while day <= f.end:
                n, w, r, s = per_day.get(day, [0.0] * 4)
                daily.append({"day": day, "leads": int(n), "won": int(w),
                              "revenue": round(r, 2), "spend": round(s, 2)})  # fmt: skip
                day += timedelta(days=1)
        return values, daily

    def funnel(self, f: Filters) -> Funnel:
        """Stage counts, rates between stages and median days between them."""
        rows = self._cohort_rows(f, "none")
        sums = [0.0] * 8
        for groups in rows.values():
            for values in groups.values():
                sums = [a + b for a, b in zip(sums, values, strict=True)]
        names = f.set_filters()
        base = "day BETWEEN {start:Date} AND {end:Date}"
        medians: list[float | None]
        dim = self._segment_dim(f, "none")
        if f.segments() and dim is None:
            sql = _sql.STAGE_DAYS_FACTS.format(
                facts=_sql.FACTS,
                where=_sql.where(names, _sql.FACTS_FILTERS, base.replace("day", "toDate(created_at)")),
            )  # fmt: skip
            row = self._rows(sql, f.params())[0]
            medians = [None if v is None or v != v else round(float(v), 2) for v in row]
        else:
            fragments = _sql.SEGMENT_FILTERS if dim else _sql.ROLLUP_FILTERS
            where = _sql.where(names, fragments, base + (" AND dim = {dim:String}" if dim else ""))
            sql = _sql.STAGE_DAYS_ROLLUP.format(
                table=_sql.COHORT_TABLES[dim is not None], where=where
            )
            row = self._rows(sql, {**f.params(), "dim": dim or ""})[0]
            medians = [_histogram_median(list(h)) for h in row]
        counts = [sums[0], sums[1], sums[2], sums[3], sums[4]]
        stages = []
        for i, name in enumerate(_STAGES):
            stages.append(
                FunnelStage(
                    stage=name, leads=int(counts[i]),
                    rate_from_previous=_ratio(counts[i], counts[i - 1], 4) if i else None,
                    median_days_from_previous=medians[i - 1] if i else None,
                )
            )  # fmt: skip
        return Funnel(stages=stages, lost=int(sums[5]), overall_rate=_ratio(sums[4], sums[0], 4))

    def lead_quality(self, f: Filters) -> LeadQuality:
        """Score histogram of the period's scored leads and the band mix by channel."""
        names = f.set_filters()
        if f.segments():
            sql = _sql.HISTOGRAM_FACTS.format(
                facts=_sql.FACTS,
                where=_sql.where(names, _sql.FACTS_FILTERS,
                                 "toDate(created_at) BETWEEN {start:Date} AND {end:Date}"),
            )  # fmt: skip
        else:
            sql = _sql.HISTOGRAM_ROLLUP.format(
                where=_sql.where(
                    names, _sql.ROLLUP_FILTERS, "day BETWEEN {start:Date} AND {end:Date}"
                )
            )
        bins = {int(b): (int(n), float(s), float(r)) for b, n, s, r in self._rows(sql, f.params())}
        histogram = [
            {"low": i / 20, "high": (i + 1) / 20, "leads": bins.get(i, (0, 0.0, 0.0))[0]}
            for i in range(20)
        ]
        scored = sum(v[0] for v in bins.values())
        rows_ = sum(v[2] for v in bins.values())
        mean = _ratio(sum(v[1] for v in bins.values()), rows_, 4)
        by_band = self._cohort_rows(f, "band")
        mix: dict[tuple[str, str], int] = defaultdict(int)
        for (_, campaign), groups in by_band.items():
            for band, values in groups.items():
                mix[(self._channels.get(campaign, ""), band)] += int(values[0])
        bands = [{"channel": ch, "band": b, "leads": n} for (ch, b), n in sorted(mix.items()) if n]
        return LeadQuality(
            histogram=histogram, bands_by_channel=bands, scored=scored, mean_score=mean
        )

    def roi(self, f: Filters, by: RoiBy = "channel") -> list[RoiRow]:
        """Spend, CPL, CPA, revenue, ROAS and ROI by channel, campaign, segment field or band."""
        rows = self._cohort_rows(f, by)
        spend = self._spend(f, rows, by)
        acc: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
        for groups in rows.values():
            for g, v in groups.items():
                a = acc[g]
                a[0] += v[0]
                a[1] += v[2]
                a[2] += v[4]
                a[3] += v[6]
        for shares in spend.values():
            for g, amount in shares.items():
                acc[g][4] += amount
        out = []
        for key, (leads, sql, won, revenue, spent) in acc.items():
            channel = (
                self._channels.get(key)
                if by == "campaign_id"
                else (key if by == "channel" else None)
            )
            out.append(
                RoiRow(
                    key=key, channel=channel, leads=int(leads), sql=int(sql), won=int(won),
                    revenue=round(revenue, 2), spend=round(spent, 2),
                    cpl=_ratio(spent, leads), cpa=_ratio(spent, won), roas=_ratio(revenue, spent),
                    roi=_ratio(revenue - spent, spent) if spent else None,
                )
            )  # fmt: skip
        return sorted(out, key=lambda r: (-r.spend, -r.leads, r.key))

    def cohorts(self, f: Filters) -> list[CohortRow]:
        """Weekly cohorts (by creation week) and the share that reached each stage."""
        rows = self._cohort_rows(f, "none")
        weeks: dict[date, list[float]] = defaultdict(lambda: [0.0] * 5)
        for (day, _), groups in rows.items():
            week = day - timedelta(days=day.weekday())
            for v in groups.values():
                w = weeks[week]
                w[0] += v[0]
                w[1] += v[1]
                w[2] += v[2]
                w[3] += v[4]
                w[4] += v[6]
        return [
            CohortRow(
                week=week,
                leads=int(n),
                mql=int(m),
                sql=int(s),
                won=int(w),
                revenue=round(r, 2),
                mql_rate=_ratio(m, n, 4),
                sql_rate=_ratio(s, n, 4),
                won_rate=_ratio(w, n, 4),
            )
            for week, (n, m, s, w, r) in sorted(weeks.items())
        ]

    def anomalies(self, f: Filters, limit: int = 100) -> list[AnomalyRow]:
        """Anomalies whose window starts in the period, newest first; scoped to the channel."""
        base = "window_start >= {since:DateTime64(3)} AND window_start < {until:DateTime64(3)}"
        params: dict[str, Any] = {**_span(f), "limit": limit}
        if f.channel or f.campaign_id:
            base += " AND " + _sql.ANOMALY_SCOPE
            params |= {"channel": f.channel or "", "campaign_id": f.campaign_id or ""}
        rows = self._rows(_sql.ANOMALIES.format(where=base), params)
        fields = list(AnomalyRow.model_fields)
        return [AnomalyRow(**dict(zip(fields, r, strict=True))) for r in rows]


def _ratio(a: float, b: float, digits: int = 2) -> float | None:
    """``a / b`` rounded, or None when ``b`` is zero.

    >>> _ratio(1, 3), _ratio(1, 0)
    (0.33, None)
    """
    return round(a / b, digits) if b else None


def _change(now: float | None, before: float | None) -> float | None:
    """Relative change from ``before`` to ``now`` (0.1 is +10 %), None without a base.

    >>> _change(110, 100), _change(5, 0), _change(None, 3)
    (0.1, None, None)
    """
    if now is None or before is None or before == 0:
        return None
    return round((now - before) / abs(before), 4)


def _histogram_median(counts: list[int]) -> float | None:
    """The median of a histogram over ``DAY_BINS``, interpolated inside its bin.

    >>> _histogram_median([0, 0, 4, 0] + [0] * 10)
    1.5
    >>> _histogram_median([0] * 14) is None
    True
    """
    total = sum(counts)
    if not total:
        return None
    half, seen = total / 2, 0.0
    bins = _sql.DAY_BINS
    for i, n in enumerate(counts):
        if n and seen + n >= half:
            low = bins[i]
            high = bins[i + 1] if i + 1 < len(bins) else low * 1.5
            return round(low + (high - low) * (half - seen) / n, 2)
        seen += n
    return None
