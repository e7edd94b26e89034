"""Windowed series of the lead stream: pure functions from events to window sums to values.

Two window lengths run side by side, both in event time:

- ``w``: the configured window (one hour by default): lead volume, conversion
  rate and mean score per channel, campaign and overall; the share of rejected
  events and event lateness overall;
- ``d``: one day, the grain at which spend is reported: cost per lead and cost
  per acquisition, and the distributions (score PSI, per-feature PSI), which
  need more leads than an hour brings;
- ``c``: the leads *created* in a window (a cohort), closed once they have had
  ``conversion_within_s`` to convert: the conversion rate is the share of the
  cohort that reached the conversion stage in that time (a true proportion,
  unlike conversions per lead in the same window, which trail leads by days).

A batch becomes *deltas*: ``{(window class, window start): {field: amount}}``,
where a field is ``"<group>|<stat>"``. Deltas add up (in Redis with
HINCRBYFLOAT), so any worker can add its partitions' events; a closed window's
sums become :class:`Observation` values. No I/O and no clock here.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

DAY_S = 86_400
OVERALL = "overall"
SCORE_BINS = 10
#: Lead fields whose distribution is watched for drift, and how each is binned.
DRIFT_COUNTERS: tuple[str, ...] = ("pages_viewed", "pricing_page_visits", "email_opens", "email_clicks")
DRIFT_CATEGORIES: tuple[str, ...] = ("channel", "industry", "country", "seniority")

_SCORE_BIN = tuple(f"sb{i}" for i in range(SCORE_BINS))
_FEATURE_GROUP = {name: f"feature={name}" for name in (
    *DRIFT_COUNTERS, "company_size", "email_is_free", "demo_requested", *DRIFT_CATEGORIES)}  # fmt: skip

Family = Literal["count", "ratio", "cost", "mean", "value", "psi"]
Deltas = dict[tuple[str, int], dict[str, float]]

#: metric -> (family, window class, the direction that is good news or None, directions that alert)
METRICS: dict[str, tuple[Family, str, str | None, tuple[str, ...]]] = {
    "lead_volume": ("count", "w", None, ("up", "down")),
    "conversion_rate": ("ratio", "c", "up", ("up", "down")),
    "mean_score": ("mean", "w", None, ("up", "down")),
    "rejected_share": ("ratio", "w", None, ("up",)),
    "lateness_s": ("value", "w", None, ("up",)),
    "cost_per_lead": ("cost", "d", "down", ("up", "down")),
    "cost_per_acquisition": ("cost", "d", "down", ("up", "down")),
    "score_psi": ("psi", "d", None, ("up",)),
    "psi": ("psi", "d", None, ("up",)),
}
#: Smallest noise scale of a value series (its unit): below it, a move is not news.
MIN_SCALE: dict[str, float] = {"lateness_s": 60.0, "mean_score": 0.002}
_KIND = {
    ("lead_volume", "up"): "volume_spike", ("lead_volume", "down"): "volume_drop",
    ("conversion_rate", "up"): "conversion_spike", ("conversion_rate", "down"): "conversion_drop",
    ("cost_per_lead", "up"): "cpl_spike", ("cost_per_lead", "down"): "cpl_drop",
    ("cost_per_acquisition", "up"): "cpa_spike", ("cost_per_acquisition", "down"): "cpa_drop",
    ("mean_score", "up"): "score_shift", ("mean_score", "down"): "score_shift",
    ("score_psi", "up"): "score_shift", ("psi", "up"): "feature_drift",
    ("rejected_share", "up"): "rejected_share", ("lateness_s", "up"): "lateness",
}  # fmt: skip
_LABEL = {
    "lead_volume": "lead volume", "conversion_rate": "conversion rate",
    "mean_score": "mean lead score", "rejected_share": "share of rejected events",
    "lateness_s": "event lateness (s)", "cost_per_lead": "cost per lead",
    "cost_per_acquisition": "cost per acquisition", "score_psi": "score distribution shift (PSI)",
    "psi": "distribution shift (PSI)",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Observation:
    """One series' value for one closed window."""

    series: str  # "<group>/<metric>", e.g. "channel=paid_search/lead_volume"
    group: str
    metric: str
    value: float
    n: float  # a rate's denominator, a cost's count, a mean's precision (1 / its variance)
    histogram: tuple[tuple[str, float], ...] | None = None  # (bin, count), PSI series

    @property
    def family(self) -> Family:
        """How the detector models this series."""
        return METRICS[self.metric][0]


@lru_cache(maxsize=4096)
def groups_of(channel: str | None, campaign: str | None) -> tuple[str, ...]:
    """The groups an event counts in.

    >>> groups_of("email", "em-01"), groups_of("email", "")
    (('overall', 'channel=email', 'campaign=em-01'), ('overall', 'channel=email'))
    """
    out = [OVERALL]
    if channel:
        out.append(f"channel={channel}")
    if campaign:
        out.append(f"campaign={campaign}")
    return tuple(out)


def window_start(ts: float, length: int) -> int:
    """Start (epoch seconds) of the window of ``length`` seconds holding ``ts``.

    >>> window_start(7_250.5, 3600)
    7200
    """
    return int(ts // length) * length


def drift_bins(lead: Mapping[str, Any]) -> dict[str, str]:
    """The bin of each watched field of a clean lead event (counters on a doubling scale).

    >>> drift_bins({"pages_viewed": 5, "channel": "email", "country": None})["pages_viewed"]
    '2'
    """
    out: dict[str, str] = {}
    for name in DRIFT_COUNTERS:
        value = lead.get(name) or 0
        out[name] = str(min(int(math.log2(1 + float(value))), 6))
    size = lead.get("company_size")
    out["company_size"] = "none" if size is None else str(min(int(math.log10(1 + size)), 5))
    out["email_is_free"] = "1" if lead.get("email_is_free") else "0"
    out["demo_requested"] = "1" if lead.get("demo_requested") else "0"
    for name in DRIFT_CATEGORIES:
        out[name] = str(lead.get(name) or "none")
    return out


class DeltaBuilder:
    """Sums of one batch by window and field; ``add_*`` per event, then :attr:`deltas`.

    Amounts accumulate under plain tuple keys, each window start computed once per event;
    the ``"<group>|<stat>"`` fields are only written out in :attr:`deltas`, once per key
    (the per-event path of the score agent: a lead adds to ~30 sums).

    Examples
    --------
    >>> b = DeltaBuilder(window_s=3600)
    >>> b.add_lead(7300.0, "email", "em-01", score=0.42, lateness_s=5.0)
    >>> b.deltas[("w", 7200)]["campaign=em-01|leads"], b.deltas[("d", 0)]["overall|leads"]
    (1.0, 1.0)
    """

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._sums: defaultdict[tuple[str, int, str, str], float] = defaultdict(float)
        self.groups: set[str] = set()

    @property
    def deltas(self) -> Deltas:
        """The batch's sums: ``{(class, window start): {"<group>|<stat>": amount}}``."""
        out: Deltas = defaultdict(lambda: defaultdict(float))
        for (cls, start, group, stat), amount in self._sums.items():
            out[(cls, start)][f"{group}|{stat}"] += amount
        return out

    def _add(self, cls: str, ts: float, groups: Iterable[str], stat: str, amount: float) -> None:
        start = window_start(ts, DAY_S if cls == "d" else self.window_s)
        sums = self._sums
        for g in groups:
            sums[(cls, start, g, stat)] += amount

    def add_lead(
        self,
        ts: float,
        channel: str | None,
        campaign: str | None,
        score: float | None = None,
        lateness_s: float = 0.0,
        bins: Mapping[str, str] | None = None,
    ) -> None:
        """A new lead (``lead_created``) with its score, lateness and drift bins."""
        groups = groups_of(channel, campaign)
        self.groups.update(groups)
        sums = self._sums
        w = int(ts // self.window_s) * self.window_s
        d = int(ts // DAY_S) * DAY_S
        for g in groups:  # the order of the per-stat path: w, d, c (c windows are w's)
            sums[("w", w, g, "leads")] += 1.0
            sums[("d", d, g, "leads")] += 1.0
            sums[("c", w, g, "leads")] += 1.0
        if score is not None:
            for g in groups:
                sums[("w", w, g, "score_sum")] += score
                sums[("w", w, g, "score_sq")] += score * score
                sums[("w", w, g, "score_n")] += 1.0
            sbin = _SCORE_BIN[min(int(score * SCORE_BINS), SCORE_BINS - 1)]
            for g in groups[:2]:
                sums[("d", d, g, sbin)] += 1.0
        sums[("w", w, OVERALL, "accepted")] += 1.0
        sums[("w", w, OVERALL, "late_sum")] += lateness_s
        for name, b in (bins or {}).items():
            sums[("d", d, _FEATURE_GROUP[name], f"bin={b}")] += 1.0

    def add_lateness(self, ts: float, lateness_s: float) -> None:
        """An accepted event that arrived ``lateness_s`` behind the stream's event-time frontier."""
        self._add("w", ts, (OVERALL,), "accepted", 1.0)
        self._add("w", ts, (OVERALL,), "late_sum", lateness_s)

    def add_conversion(
        self, ts: float, channel: str | None, campaign: str | None, cohort_ts: float | None = None
    ) -> None:
        """A lead reaching the conversion stage at ``ts``, counted in its lead's groups.

        ``cohort_ts`` is the lead's creation time when the conversion came soon
        enough to count in its cohort's conversion rate.
        """
        groups = groups_of(channel, campaign)
        self._add("d", ts, groups, "conv", 1.0)
        if cohort_ts is not None:
            self._add("c", cohort_ts, groups, "conv", 1.0)

    def add_spend(self, day_ts: float, channel: str | None, campaign: str | None, amount: float) -> None:
        """Spend reported for the day holding ``day_ts``."""
        groups = groups_of(channel, campaign)
        self.groups.update(groups)
        self._add("d", day_ts, groups, "spend", amount)

    def add_rejected(self, ts: float, count: int) -> None:
        """Events rejected while the stream's frontier was at ``ts``."""
        self._add("w", ts, (OVERALL,), "rejected", float(count))


def observations(
    cls: str,
    sums: Mapping[str, float],
    groups: Iterable[str],
    min_leads: int,
    psi_min_leads: int,
) -> list[Observation]:
    """The series values of one closed window of class ``cls`` from its sums.

    Every known group gets a volume, even a zero one (a campaign that stopped
    is news); rates, means and costs need ``min_leads`` leads, PSI series
    ``psi_min_leads``.

    Examples
    --------
    >>> sums = {"overall|leads": 40.0, "overall|score_sum": 12.0,
    ...         "overall|score_n": 40.0, "overall|accepted": 50.0, "overall|rejected": 2.0,
    ...         "overall|late_sum": 100.0}
    >>> [(o.series, round(o.value, 3)) for o in observations("w", sums, ["overall", "campaign=x"], 20, 500)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('overall/lead_volume', 40.0), ('overall/mean_score', 0.3),
     ('overall/rejected_share', 0.038), ('overall/lateness_s', 2.0), ('campaign=x/lead_volume', 0.0)]
    >>> observations("c", {"overall|leads": 40.0, "overall|conv": 8.0}, [], 20, 500)[0].value
    0.2
    """
    by_group: dict[str, dict[str, float]] = defaultdict(dict)
    for field, amount in sums.items():
        group, _, stat = field.partition("|")
        by_group[group][stat] = amount
    out: list[Observation] = []
    if cls == "w":
        for g in dict.fromkeys([*groups, *(g for g in by_group if not g.startswith("feature="))]):
            s = by_group.get(g, {})
            leads = s.get("leads", 0.0)
            out.append(Observation(f"{g}/lead_volume", g, "lead_volume", leads, 1.0))
            n = s.get("score_n", 0.0)
            # Per campaign, the mean score mostly follows the campaign's lead mix: noise.
            if n >= min_leads and not g.startswith("campaign="):
                mean = s["score_sum"] / n
                var = max(s.get("score_sq", 0.0) / n - mean * mean, 0.0) * n / (n - 1)
                precision = n / max(var, 1e-6)  # of the mean
                out.append(Observation(f"{g}/mean_score", g, "mean_score", mean, precision))
            if g == OVERALL:
                seen = s.get("accepted", 0.0) + s.get("rejected", 0.0)
                if seen:
                    share = s.get("rejected", 0.0) / seen
                    out.append(Observation(f"{g}/rejected_share", g, "rejected_share", share, seen))
                if s.get("accepted"):
                    lateness = s.get("late_sum", 0.0) / s["accepted"]
                    out.append(Observation(f"{g}/lateness_s", g, "lateness_s", lateness, s["accepted"]))
        return out
    if cls == "c":
        for g, s in by_group.items():
            leads = s.get("leads", 0.0)
            if leads >= min_leads:
                rate = s.get("conv", 0.0) / leads
                out.append(Observation(f"{g}/conversion_rate", g, "conversion_rate", rate, leads))
        return out
    for g, s in by_group.items():
        if g.startswith("feature="):
            hist = {k.removeprefix("bin="): v for k, v in s.items()}
            n = sum(hist.values())
            if n >= psi_min_leads:
                out.append(Observation(f"{g}/psi", g, "psi", 0.0, n, tuple(sorted(hist.items()))))
            continue
        leads, spend, conv = s.get("leads", 0.0), s.get("spend", 0.0), s.get("conv", 0.0)
        if spend > 0 and leads >= min_leads:
            out.append(Observation(f"{g}/cost_per_lead", g, "cost_per_lead", spend / leads, leads))
        if spend > 0 and conv >= max(5, min_leads // 4):
            out.append(Observation(f"{g}/cost_per_acquisition", g, "cost_per_acquisition", spend / conv, conv))  # fmt: skip
        bins = tuple((str(i), s.get(f"sb{i}", 0.0)) for i in range(SCORE_BINS))
        n = sum(c for _, c in bins)
        if n >= psi_min_leads:
            out.append(Observation(f"{g}/score_psi", g, "score_psi", 0.0, n, bins))
    return out


def kind_of(metric: str, direction: str) -> str:
    """The anomaly kind of a metric moving in a direction.

    >>> kind_of("conversion_rate", "up"), kind_of("psi", "up")
    ('conversion_spike', 'feature_drift')
    """
    return _KIND[(metric, direction)]


def is_opportunity(metric: str, direction: str) -> bool:
    """Whether the move is good news (a campaign converting above normal, costs falling)."""
    return METRICS[metric][2] == direction


def describe(
    obs: Observation, direction: str, expected: float, low: float, high: float,
    start: datetime, end: datetime,
) -> str:  # fmt: skip
    """A plain-words description of an anomaly.

    >>> t0, t1 = datetime(2026, 2, 2, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)
    >>> describe(Observation("campaign=x/cost_per_lead", "campaign=x", "cost_per_lead", 90.0, 1),
    ...          "up", 50.0, 35.0, 65.0, t0, t1)
    'Cost per lead of campaign x was 90 from 2026-02-02 00:00 to 2026-02-03 00:00 UTC, above its normal range 35 – 65 (expected 50).'
    """
    what = _LABEL[obs.metric]
    dim, _, value = obs.group.partition("=")
    where = "overall" if obs.group == OVERALL else f"of {dim} {value}"
    side = "above" if direction == "up" else "below"
    tail = " Good news: worth a closer look." if is_opportunity(obs.metric, direction) else ""
    fmt = _fmt(obs.metric)
    return (
        f"{what[0].upper()}{what[1:]} {where} was {fmt(obs.value)} from {start:%Y-%m-%d %H:%M} "
        f"to {end:%Y-%m-%d %H:%M} UTC, {side} its normal range {fmt(low)} – {fmt(high)} "
        f"(expected {fmt(expected)}).{tail}"
    )


def _fmt(metric: str) -> Any:
    if metric in ("conversion_rate", "rejected_share"):
        return lambda v: f"{100 * v:.1f}%"
    if metric == "lead_volume":
        return lambda v: f"{v:,.0f}"
    if metric in ("mean_score", "score_psi", "psi"):
        return lambda v: f"{v:.3f}"
    return lambda v: f"{v:,.0f}" if abs(v) >= 10 else f"{v:.2f}"


def to_datetime(epoch_s: float) -> datetime:
    """An aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, tz=UTC)
