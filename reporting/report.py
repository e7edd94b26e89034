"""The weekly and monthly report: numbers from the query layer, a summary written from them.

:func:`build_report` reads every view the report needs through
:class:`reporting.queries.Analytics` (KPIs against the previous period, funnel,
return by channel and campaign, cohorts, anomalies, model health), the
characteristics of converting leads (:mod:`reporting.insights`) and the budget
recommendations (:mod:`reporting.recommend`). The executive summary is written from
those results only: every number in it is a field of a query result, formatted.
:mod:`reporting.exports` turns a :class:`Report` into PDF, HTML, CSV and Excel.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

import structlog
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel

from config.settings import Settings
from reporting import _report_charts as charts
from reporting._period import Period, PeriodKind
from reporting.attribution import AttributionSection, attribution_section
from reporting.labels import KPI_LABELS, segment_phrase, stage_label
from reporting.queries import Analytics, AnomalyRow, Filters, Kpis, RoiRow
from reporting.recommend import Recommendations, recommendations

__all__ = ["Column", "Report", "Table", "build_report"]

log = structlog.get_logger(__name__)

ColumnKind = Literal["text", "int", "money", "pct", "ratio", "date"]


class Column(BaseModel):
    """A table column: key, heading and the kind of value (it sets the cell format)."""

    key: str
    label: str
    kind: ColumnKind = "text"


class Table(BaseModel):
    """A table of the report, exported as one CSV file and one sheet."""

    name: str
    title: str
    columns: list[Column]
    rows: list[list[Any]]


class Report(BaseModel):
    """Everything one report shows."""

    title: str
    period: Period
    previous: Period
    generated_at: datetime
    currency: str
    summary: list[str]
    kpis: Kpis
    channels: list[RoiRow]
    campaigns: list[RoiRow]
    anomalies: list[AnomalyRow]
    model: dict[str, Any]
    converting: list[str]
    recommendations: Recommendations
    tables: list[Table]
    charts: dict[str, str]

    @property
    def stem(self) -> str:
        """File name stem of the artefacts, e.g. ``leadstream-weekly-2026-W06``."""
        return f"leadstream-{self.period.key}"


def build_report(
    client: Client, settings: Settings, kind: PeriodKind, period: Period | None = None,
    *, now: datetime | None = None,
) -> Report:  # fmt: skip
    """Build the report of ``period`` (default: the last complete one in the report time zone)."""
    cfg = settings.reports
    period = period or Period.now(kind, cfg.timezone, now)
    db = settings.clickhouse.database
    analytics = Analytics(client, db)
    f = Filters(start=period.start, end=period.end)
    kpis = analytics.kpis(f)
    channels = analytics.roi(f, "channel")
    channels_before = {r.key: r for r in analytics.roi(f.previous(), "channel")}
    campaigns = analytics.roi(f, "campaign_id")
    funnel = analytics.funnel(f)
    cohorts = analytics.cohorts(Filters(start=period.end - timedelta(days=83), end=period.end))
    anomalies = analytics.anomalies(f)
    model = _model_summary(analytics, f)
    converting = _converting(client, settings, period)
    recs = recommendations(client, settings, period)
    attribution = _attribution(client, db, period)
    cur = cfg.currency
    summary = [
        _headline(kpis, period, cur),
        _channel_story(channels, channels_before, period, cur),
        _campaign_story(campaigns, cur),
        _anomaly_story(anomalies, period),
        _model_story(model, period),
        _converting_story(converting),
        attribution.story if attribution else "",
        # The moves themselves are listed once, under Recommendations.
        recs.summary + (" Each move is listed under Recommendations." if recs.moves else ""),
    ]
    tables = _tables(
        kpis, funnel.model_dump()["stages"], channels, campaigns, cohorts, anomalies, recs, cur
    )
    if attribution:
        tables.append(_attribution_table(attribution))
    daily = kpis.daily
    labels = [str(d["day"])[5:] for d in daily]
    previous_daily = analytics.kpis(f.previous()).daily
    figures = {
        "leads": charts.lines(
            f"Leads per day, this {period.noun} and the one before",
            {f"this {period.noun}": [d["leads"] for d in daily],
             f"previous {period.noun}": [d["leads"] for d in previous_daily]},
            labels,
        ),
        "channels": charts.grouped_bars(
            f"Spend and revenue by channel ({cur})", [r.key for r in channels],
            {"spend": [r.spend for r in channels], "revenue": [r.revenue for r in channels]},
        ),
        "funnel": charts.funnel(
            "Funnel of this period's leads", [(stage_label(s.stage), float(s.leads)) for s in funnel.stages]
        ),
        "budget": charts.grouped_bars(
            f"Spend by channel next {period.noun} ({cur})", [str(c["channel"]) for c in recs.channels],
            {"current": [float(c["current"]) for c in recs.channels],
             "recommended": [float(c["recommended"]) for c in recs.channels]},
        ),
    }  # fmt: skip
    return Report(
        title=f"leadstream {kind} report: {period.label}", period=period,
        previous=period.previous(), generated_at=now or datetime.now(UTC), currency=cur,
        summary=[s for s in summary if s], kpis=kpis, channels=channels, campaigns=campaigns,
        anomalies=anomalies, model=model, converting=converting, recommendations=recs,
        tables=tables, charts=figures,
    )  # fmt: skip


def _pct(x: float | None) -> str:
    """A signed relative change in words.

    >>> _pct(0.052), _pct(-0.2), _pct(None)
    ('+5.2%', '-20.0%', 'no comparison')
    """
    return "no comparison" if x is None else f"{x:+.1%}"


def _headline(k: Kpis, period: Period, cur: str) -> str:
    c, ch = k.current, k.change
    rate = f" ({c.conversion_rate:.1%} of them)" if c.conversion_rate is not None else ""
    text = (
        f"In {period.label}, {c.leads:,} new leads arrived ({_pct(ch['leads'])} against the"
        f" previous {period.noun}); {c.sql:,} of them have reached SQL so far{rate}, and"
        f" {c.won:,} deals worth {cur} {c.revenue:,.0f} were won from them."
        f" Spend was {cur} {c.spend:,.0f} ({_pct(ch['spend'])})"
    )
    if c.cpl is not None:
        text += f", a cost per lead of {cur} {c.cpl:,.2f}"
    if c.roas is not None:
        text += f" and a return on ad spend of {c.roas:.2f}"
    return text + "."


def _channel_story(rows: list[RoiRow], before: dict[str, RoiRow], period: Period, cur: str) -> str:
    paid = [r for r in rows if r.spend > 0 and r.roas is not None]
    parts = []
    if paid:
        best = max(paid, key=lambda r: (r.roas or 0.0, r.key))
        worst = min(paid, key=lambda r: (r.roas or 0.0, r.key))
        parts.append(
            f"Best paid channel: {best.key}, with a return on ad spend of {best.roas:.2f}"
            f" ({cur} {best.revenue:,.0f} revenue on {cur} {best.spend:,.0f} spend); weakest:"
            f" {worst.key} at {worst.roas:.2f} ({cur} {worst.revenue:,.0f} on {cur} {worst.spend:,.0f})."
        )
    moves = [(r.key, r.leads - (before[r.key].leads if r.key in before else 0)) for r in rows]
    if moves:
        key, delta = max(moves, key=lambda m: (abs(m[1]), m[0]))
        if delta:
            parts.append(
                f"The largest change in leads came from {key}: {delta:+,} against the previous"
                f" {period.noun}."
            )
    return " ".join(parts)


def _campaign_story(rows: list[RoiRow], cur: str) -> str:
    paid = [r for r in rows if r.spend > 0 and r.roas is not None and r.leads >= 10]
    if len(paid) < 2:
        return ""
    best = max(paid, key=lambda r: (r.roas or 0.0, r.key))
    worst = min(paid, key=lambda r: (r.roas or 0.0, r.key))
    return (
        f"Among campaigns with at least 10 leads, {best.key} returned the most per {cur}"
        f" spent ({best.roas:.2f}) and {worst.key} the least ({worst.roas:.2f})."
    )


def _anomaly_story(rows: list[AnomalyRow], period: Period) -> str:
    if not rows:
        return f"No anomalies were detected this {period.noun}."
    critical = sum(r.severity == "critical" for r in rows)
    worst = sorted(rows, key=lambda r: (r.severity != "critical", r.window_start))[0]
    return (
        f"{len(rows):,} anomalies were detected ({critical:,} critical); the most serious:"
        f" {(worst.description or worst.series).rstrip('.')}."
    )


def _model_summary(analytics: Analytics, f: Filters) -> dict[str, Any]:
    health = analytics.model_health(f)
    later = False
    span = analytics.data_span()
    if not health.metrics and span is not None and f.end < span[1]:
        # The learner stamps its metrics with its own clock: on replayed or generated history
        # none fall in a past period. The model as last recorded is then the one to describe.
        health = analytics.model_health(Filters(start=f.start, end=span[1]))
        later = True
    champion = [
        m for m in health.metrics if m.get("role") == "champion" and m.get("auc") is not None
    ]
    out: dict[str, Any] = {"promotions": len(health.promotions), "metrics": len(health.metrics),
                           "later": later}  # fmt: skip
    if champion:  # newest first
        out |= {"model": champion[0]["model_name"], "auc": float(champion[0]["auc"]),
                "auc_start": float(champion[-1]["auc"]), "examples": int(champion[0]["examples"])}  # fmt: skip
    return out


def _model_story(model: dict[str, Any], period: Period) -> str:
    if "auc" not in model:
        return f"No model quality metrics were recorded this {period.noun}."
    if model["later"]:
        return (
            f"The scoring model ({model['model']}), as last recorded, ranks leads with an AUC of"
            f" {model['auc']:.3f} (0.5 is chance), scored on each of its last"
            f" {model['examples']:,} labelled leads before learning it."
        )
    return (
        f"The scoring model ({model['model']}) ranks leads with an AUC of {model['auc']:.3f}"
        f" ({model['auc_start']:.3f} at the start of the {period.noun}; 0.5 is chance) over"
        f" {model['examples']:,} labelled examples; {model['promotions']:,} champion changes."
    )


def _converting(client: Client, settings: Settings, period: Period) -> list[str]:
    """What distinguishes leads that converted: the strongest significant segments."""
    from reporting.insights import segment_insights

    end = datetime.combine(period.end + timedelta(days=1), time(0), tzinfo=UTC)
    try:
        found = segment_insights(client, settings.clickhouse.database, settings.models,
                                 until=end, as_of=end, pairs=False, limit=40)  # fmt: skip
    except Exception as exc:  # advisory: the report goes out without this section
        log.warning("report.insights_failed", error=str(exc)[:300])
        return []
    best = [s for s in found.segments if s.significant and s.direction == "higher"][:3]
    return [
        f"{segment_phrase(s.fields, s.values)}"
        f" ({s.rate:.1%} convert, {s.lift:.2f}× the average of {found.base_rate:.1%})"
        for s in best
    ]


def _converting_story(items: list[str]) -> str:
    if not items:
        return ""
    return "Leads that convert most often: " + "; ".join(items) + "."


def _attribution(client: Client, db: str, period: Period) -> AttributionSection | None:
    """Which channels earned the period's SQLs under each model (advisory: None on failure)."""
    try:
        return attribution_section(client, db, period.start, period.end, period.noun)
    except Exception as exc:  # advisory: the report goes out without this section
        log.warning("report.attribution_failed", error=str(exc)[:300])
        return None


def _attribution_table(a: AttributionSection) -> Table:
    kinds: dict[str, ColumnKind] = {"channel": "text", "data_driven_revenue": "money",
                                    "spend": "money", "data_driven_roi": "ratio"}  # fmt: skip
    columns = [Column(key=c, label=c.replace("_", " "), kind=kinds.get(c, "pct")) for c in a.columns]
    return Table(name="attribution", title="Share of SQLs by channel under each attribution model",
                 columns=columns, rows=a.rows)  # fmt: skip


def _tables(
    k: Kpis, stages: list[dict[str, Any]], channels: list[RoiRow], campaigns: list[RoiRow],
    cohorts: list[Any], anomalies: list[AnomalyRow], recs: Recommendations, currency: str,
) -> list[Table]:  # fmt: skip
    cur, prev = k.current.model_dump(), k.previous.model_dump()

    def kpi_row(name: str) -> list[Any]:
        label, unit = KPI_LABELS[name]
        # Rates in percent, as the unit column says ("% of new leads").
        scale = 100.0 if name == "conversion_rate" else 1.0
        counted = unit in ("leads", "deals")  # counts read as whole numbers

        def shown(v: float | None) -> float | int | None:
            return None if v is None else int(v) if counted else round(v * scale, 2)

        return [label, unit.format(currency=currency), shown(cur[name]), shown(prev[name]),
                k.change.get(name)]  # fmt: skip

    roi_cols = [Column(key="key", label="name"), Column(key="leads", label="leads", kind="int"),
                Column(key="sql", label="SQLs", kind="int"), Column(key="won", label="won", kind="int"),
                Column(key="revenue", label="revenue", kind="money"),
                Column(key="spend", label="spend", kind="money"), Column(key="cpl", label="cost per lead", kind="money"),
                Column(key="roas", label="return on ad spend", kind="ratio")]  # fmt: skip

    def roi(rows: list[RoiRow]) -> list[list[Any]]:
        return [[getattr(r, c.key) for c in roi_cols] for r in rows]

    return [
        Table(name="kpis", title="Key indicators", columns=[
            Column(key="indicator", label="indicator"), Column(key="unit", label="unit"),
            Column(key="current", label="this period", kind="ratio"),
            Column(key="previous", label="previous period", kind="ratio"),
            Column(key="change", label="change", kind="pct")],
            rows=[kpi_row(n) for n in KPI_LABELS]),
        Table(name="funnel", title="Funnel", columns=[
            Column(key="stage", label="stage"), Column(key="leads", label="leads", kind="int"),
            Column(key="rate_from_previous", label="rate from previous stage", kind="pct"),
            Column(key="median_days_from_previous", label="median days from previous stage", kind="ratio")],
            rows=[[stage_label(s["stage"]), s["leads"], s["rate_from_previous"], s["median_days_from_previous"]] for s in stages]),
        Table(name="channels", title="Return by channel", columns=roi_cols, rows=roi(channels)),
        Table(name="campaigns", title="Return by campaign", columns=roi_cols, rows=roi(campaigns)),
        Table(name="cohorts", title="Weekly cohorts (last 12 weeks)", columns=[
            Column(key="week", label="week", kind="date"), Column(key="leads", label="leads", kind="int"),
            Column(key="sql", label="SQLs", kind="int"), Column(key="won", label="won", kind="int"),
            Column(key="sql_rate", label="SQL rate", kind="pct"), Column(key="revenue", label="revenue", kind="money")],
            rows=[[c.week, c.leads, c.sql, c.won, c.sql_rate, c.revenue] for c in cohorts]),
        Table(name="budget", title="Recommended spend next period", columns=[
            Column(key="campaign_id", label="campaign"), Column(key="channel", label="channel"),
            Column(key="current", label="current", kind="money"),
            Column(key="recommended", label="recommended", kind="money"),
            Column(key="change", label="change", kind="money"),
            Column(key="conversions", label="expected SQL change", kind="ratio"),
            Column(key="low", label="80% low", kind="ratio"), Column(key="high", label="80% high", kind="ratio")],
            rows=[[c.campaign_id, c.channel, c.current, c.recommended, c.change, c.conversions.mean,
                   c.conversions.low, c.conversions.high] for c in recs.campaigns]),
        Table(name="anomalies", title="Anomalies", columns=[
            Column(key="window_start", label="from", kind="date"), Column(key="kind", label="kind"),
            Column(key="series", label="series"), Column(key="severity", label="severity"),
            Column(key="value", label="value", kind="ratio"), Column(key="expected", label="expected", kind="ratio"),
            Column(key="description", label="description")],
            rows=[[a.window_start.date(), a.kind.replace("_", " "), a.series, a.severity, a.value, a.expected, a.description]
                  for a in anomalies]),
    ]  # fmt: skip
