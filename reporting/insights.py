"""Which characteristics mark successful leads, and which features drive the current model.

Plain functions for the dashboard, the reports and ``leadstream insights``:

- :func:`segment_insights`: segments (one field, or a pair of fields) whose conversion
  rate differs from the base rate with statistical support: a minimum number of leads,
  a Wilson confidence interval, and hierarchical testing with the Benjamini–Hochberg
  procedure at each level: first each field (does conversion depend on it at all? a
  chi-square test over its values), then the values of the significant fields (each
  against the rest of the cohort; Fisher's exact test for small counts), then the pairs
  of two significant values. A pair must differ from the rest of the cohort and from
  each of its two parts (an intersection-union test: its p-value is the largest of the
  three), so ``referral & utm_content=footer`` does not ride on ``referral`` alone.
  Ranked by excess conversions (lift times volume), by lift, or by volume.
- :func:`importance_report`: global importance of the model's features over recent leads
  (:func:`online_models.importance.feature_importance`).

The conversion definition is the learner's: a lead converted if it reached the
configured target stage (or a later one, ``lost`` excluded) within ``horizon_days`` of
its creation. Only leads whose horizon has passed (by ``as_of``, by default the latest
event time in the data) are counted, since a younger lead's outcome is not known yet.
Segments use each lead's first event (what was known when it arrived).

Every query is static SQL with server-side parameters (the database name too, as an
``Identifier``); nothing a caller passes is pasted into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any, Literal, TypeVar

import orjson
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict
from scipy.stats import chi2_contingency, false_discovery_control, fisher_exact

from config.settings import STAGES, ModelSettings
from online_models.features import lead_features
from online_models.importance import Explainer, FeatureImportance, feature_importance
from reporting import _sql
from streaming.events import TOUCHPOINT_EVENT_TYPES

__all__ = [
    "SEGMENT_FIELDS",
    "FieldTest",
    "ImportanceReport",
    "Segment",
    "SegmentReport",
    "converting_stages",
    "importance_report",
    "recent_lead_features",
    "segment_insights",
    "wilson_interval",
]

#: Lead fields segments are built from (numbers as buckets; ``utm_content`` from the
#: event's extra fields). Values: the category, ``(missing)``, ``yes``/``no``, or a bucket.
SEGMENT_FIELDS: tuple[str, ...] = (
    "channel", "industry", "country", "seniority", "company_size", "email_is_free",
    "demo_requested", "pricing_page_visits", "pages_viewed", "has_phone", "utm_content",
)  # fmt: skip

OrderBy = Literal["impact", "lift", "leads"]
_Key = tuple[tuple[str, ...], tuple[str, ...]]
_T = TypeVar("_T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_AS_OF = """
SELECT greatest(
    (SELECT max(occurred_at) FROM {db:Identifier}.leads),
    (SELECT max(occurred_at) FROM {db:Identifier}.conversions))
"""

# One row per segment: (fields, values, leads, conversions). The first row (no fields)
# is the whole cohort; pairs are every two distinct fields of one lead.
_SEGMENTS = """
WITH
  firsts AS (
    SELECT lead_id, occurred_at AS created, channel, industry, company_size, country,
           seniority, email_is_free, demo_requested, pricing_page_visits, pages_viewed,
           phone_hash, JSONExtractString(attributes, 'utm_content') AS utm_content
    FROM {db:Identifier}.leads FINAL
    ORDER BY lead_id, occurred_at, event_id
    LIMIT 1 BY lead_id
  ),
  conv AS (
    SELECT lead_id, min(occurred_at) AS first_at
    FROM {db:Identifier}.conversions FINAL
    WHERE stage IN {stages:Array(String)}
    GROUP BY lead_id
  ),
  cohort AS (
    SELECT f.*, toUInt8(c.lead_id != ''
                        AND c.first_at <= f.created + toIntervalSecond({horizon_s:UInt64}))
                AS converted
    FROM firsts AS f LEFT JOIN conv AS c ON f.lead_id = c.lead_id
    WHERE f.created >= {since:DateTime64(3)} AND f.created < {until:DateTime64(3)}
      AND f.created + toIntervalSecond({horizon_s:UInt64}) <= {as_of:DateTime64(3)}
      /* leads */
  ),
  tagged AS (
    SELECT converted, arrayFilter(a -> a.2 != '' AND has({fields:Array(String)}, a.1), [
      ('channel', toString(channel)),
      ('industry', toString(ifNull(industry, '(missing)'))),
      ('country', toString(ifNull(country, '(missing)'))),
      ('seniority', toString(ifNull(seniority, '(missing)'))),
      ('company_size', multiIf(company_size IS NULL, '(missing)', company_size <= 10, '1-10',
          company_size <= 50, '11-50', company_size <= 200, '51-200',
          company_size <= 1000, '201-1000', company_size <= 5000, '1001-5000', '5000+')),
      ('email_is_free', if(email_is_free, 'yes', 'no')),
      ('demo_requested', if(demo_requested, 'yes', 'no')),
      ('pricing_page_visits', multiIf(pricing_page_visits = 0, '0',
          pricing_page_visits = 1, '1', pricing_page_visits <= 3, '2-3', '4+')),
      ('pages_viewed', multiIf(pages_viewed <= 1, '0-1', pages_viewed <= 3, '2-3',
          pages_viewed <= 7, '4-7', '8+')),
      ('has_phone', if(phone_hash IS NULL, 'no', 'yes')),
      ('utm_content', utm_content)
    ]) AS attrs
    FROM cohort
  )
SELECT CAST([] AS Array(String)) AS fields, CAST([] AS Array(String)) AS vals,
       count() AS n, sum(converted) AS k
FROM tagged
UNION ALL
SELECT [a.1], [a.2], count(), sum(converted)
FROM tagged ARRAY JOIN attrs AS a
GROUP BY a.1, a.2
HAVING count() >= {min_support:UInt64}
UNION ALL
SELECT [p.1.1, p.2.1], [p.1.2, p.2.2], count(), sum(converted)
FROM (
  SELECT converted, arrayJoin(arrayFlatten(arrayMap(
           i -> arrayMap(j -> (attrs[i], attrs[j]), range(i + 1, length(attrs) + 1)),
           range(1, length(attrs) + 1)))) AS p
  FROM tagged WHERE {pairs:UInt8} = 1)
GROUP BY p.1.1, p.2.1, p.1.2, p.2.2
HAVING count() >= {min_support:UInt64}
"""

# The most recent lead events with the touchpoints of their leads (for recomputing the
# features the scorer saw: engagement up to the event's own time).
_RECENT = """
WITH recent AS (
    SELECT lead_id, event_id, occurred_at, channel, source, campaign_id, email_domain,
           email_is_free, phone_hash, industry, company_size, country, seniority,
           pages_viewed, pricing_page_visits, email_opens, email_clicks, demo_requested,
           attributes
    FROM {db:Identifier}.leads FINAL
    WHERE occurred_at >= {since:DateTime64(3)}
    ORDER BY occurred_at DESC, event_id
    LIMIT {limit:UInt64}
),
touches AS (
    SELECT lead_id, groupArray((toString(event_type), occurred_at)) AS t
    FROM {db:Identifier}.touchpoints FINAL
    WHERE lead_id IN (SELECT lead_id FROM recent)
    GROUP BY lead_id
)
SELECT r.*, t.t FROM recent AS r LEFT JOIN touches AS t ON r.lead_id = t.lead_id
ORDER BY r.occurred_at, r.event_id
"""


class Segment(BaseModel):
    """One segment and how its conversion rate compares with the base rate.

    ``lift`` is the segment's rate over the base rate, with the bounds of the rate's
    Wilson interval divided the same way. ``excess_conversions`` is how many more (or,
    negative, fewer) conversions the segment had than the base rate predicts: lift and
    volume in one number. ``q_value`` is the Benjamini–Hochberg adjusted p-value over
    every segment tested. For a pair, ``lift_over_parts`` is its rate over the rate of
    the part that is furthest from the base rate in the same direction.
    """

    model_config = ConfigDict(frozen=True)

    fields: tuple[str, ...]
    values: tuple[str, ...]
    leads: int
    conversions: int
    rate: float
    rate_low: float
    rate_high: float
    lift: float
    lift_low: float
    lift_high: float
    excess_conversions: float
    p_value: float
    q_value: float
    significant: bool
    direction: Literal["higher", "lower"]
    lift_over_parts: float | None = None

    @property
    def label(self) -> str:
        """``channel=referral & seniority=vp``."""
        return " & ".join(f"{f}={v}" for f, v in zip(self.fields, self.values, strict=True))


class FieldTest(BaseModel):
    """Whether conversion depends on a field at all (chi-square over its values, then BH)."""

    model_config = ConfigDict(frozen=True)

    field: str
    levels: int
    p_value: float
    q_value: float
    significant: bool


class SegmentReport(BaseModel):
    """The cohort, its base rate, the field-level tests, and the ranked segments.

    ``tested`` counts the segments that were tested: the values of significant fields,
    and the pairs of two significant values.
    """

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    since: datetime | None
    until: datetime | None
    target_stage: str
    horizon_days: float
    leads: int
    conversions: int
    base_rate: float
    base_low: float
    base_high: float
    min_support: int
    alpha: float
    confidence: float
    fields: list[FieldTest]
    tested: int
    significant: int
    segments: list[Segment]


class ImportanceReport(BaseModel):
    """Global feature importance of one model version over a sample of recent leads."""

    model_config = ConfigDict(frozen=True)

    model_version: int
    leads: int
    by_field: bool
    features: list[FeatureImportance]


def converting_stages(target_stage: str) -> list[str]:
    """The stages that count as converted: the target and every later one but ``lost``.

    >>> converting_stages("sql")
    ['sql', 'opportunity', 'won']
    """
    if target_stage not in STAGES or target_stage == "lost":
        raise ValueError(f"target stage {target_stage!r} is not one of {list(STAGES[:-1])}")
    start = STAGES.index(target_stage)
    return [s for s in STAGES[start:] if s != "lost"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``.

    >>> [round(v, 4) for v in wilson_interval(10, 100)]
    [0.0552, 0.1744]
    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _two_sided_p(k: int, n: int, k2: int, n2: int) -> float:
    """Two-sided p-value of the difference between ``k/n`` and ``k2/n2``.

    Fisher's exact test when an expected cell count is below 5; otherwise the pooled
    two-proportion z-test (the chi-square test), which agrees with it there and is
    a thousand times faster.

    >>> round(_two_sided_p(30, 100, 100, 900), 6) == round(_two_sided_p(100, 900, 30, 100), 6)
    True
    >>> _two_sided_p(5, 50, 50, 500) > 0.5, _two_sided_p(1, 3, 0, 0)
    (True, 1.0)
    """
    if n <= 0 or n2 <= 0:
        return 1.0
    pooled = (k + k2) / (n + n2)
    if min(n, n2) * min(pooled, 1 - pooled) < 5:
        return float(fisher_exact([[k, n - k], [k2, n2 - k2]]).pvalue)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n2))
    return math.erfc(abs(k / n - k2 / n2) / se / math.sqrt(2))


def segment_insights(
    client: Client,
    database: str,
    models: ModelSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime | None = None,
    min_support: int = 100,
    alpha: float = 0.05,
    confidence: float = 0.95,
    pairs: bool = True,
    fields: Sequence[str] | None = None,
    order_by: OrderBy = "impact",
    include_all: bool = False,
    direction: Literal["higher", "lower"] | None = None,
    limit: int | None = None,
    leads: Mapping[str, str] | None = None,
) -> SegmentReport:
    """Segments whose conversion rate differs from the base rate, with statistical support.

    Parameters
    ----------
    client
        A ClickHouse (or chDB) client.
    database
        The leadstream database.
    models
        Model settings: ``target_stage`` and ``horizon_days`` define a conversion.
    since, until
        Only leads created in ``[since, until)``.
    as_of
        The time outcomes are known up to (default: the latest event in the data).
    min_support
        Segments with fewer leads are not tested.
    alpha
        False discovery rate for the Benjamini–Hochberg procedure.
    confidence
        Level of the Wilson intervals.
    pairs
        Test pairs of fields too.
    fields
        The fields to build segments from (default :data:`SEGMENT_FIELDS`).
    order_by
        ``impact`` (absolute excess conversions), ``lift`` (furthest from 1 either way)
        or ``leads``.
    include_all
        Return every tested segment, not only the significant ones.
    direction
        Only segments that convert ``higher`` (or ``lower``) than the base rate.
    limit
        At most this many segments.
    leads
        Only leads whose facts have these values: the dashboard's filters ``channel``,
        ``campaign_id``, ``industry``, ``country``, ``size_bucket``, ``seniority`` and
        ``band`` (the lead's current score band), as in ``lead_facts``.
    """
    chosen = list(SEGMENT_FIELDS if fields is None else fields)
    unknown = sorted(set(chosen) - set(SEGMENT_FIELDS))
    if unknown:
        raise ValueError(f"unknown segment fields {unknown}; choose from {list(SEGMENT_FIELDS)}")
    if min_support < 1:
        raise ValueError(f"min_support must be at least 1, got {min_support}")
    if not 0 < alpha < 1 or not 0 < confidence < 1:
        raise ValueError(f"alpha and confidence must be in (0, 1), got {alpha}, {confidence}")
    if direction not in (None, "higher", "lower"):
        raise ValueError(f"direction must be higher or lower, got {direction!r}")
    if order_by not in ("impact", "lift", "leads"):
        raise ValueError(f"order_by must be impact, lift or leads, got {order_by!r}")
    if as_of is None:
        as_of = _as_utc(client.query(_AS_OF, parameters={"db": database}).result_rows[0][0])
    horizon_s = round(models.horizon_days * 86400)
    leads = dict(leads or {})
    rows = client.query(
        _segments_sql(sorted(leads)),
        parameters={
            **leads,
            "db": database,
            "stages": converting_stages(models.target_stage),
            "horizon_s": horizon_s,
            "since": since or _EPOCH,
            "until": until or as_of,
            "as_of": as_of,
            "fields": chosen,
            "min_support": min_support,
            "pairs": int(pairs),
        },
    ).result_rows
    total = next((r for r in rows if not r[0]), None)
    big_n, big_k = (int(total[2]), int(total[3])) if total else (0, 0)
    base = big_k / big_n if big_n else 0.0
    counts = {(tuple(r[0]), tuple(r[1])): (int(r[2]), int(r[3])) for r in rows if r[0] and big_n}
    field_tests, segments = _test(counts, big_n, big_k, alpha, confidence) if big_n else ([], [])
    significant = sum(s.significant for s in segments)
    shown = [
        s for s in segments if (include_all or s.significant) and direction in (None, s.direction)
    ]
    shown.sort(key=_RANK[order_by])
    base_low, base_high = wilson_interval(big_k, big_n, confidence)
    return SegmentReport(
        as_of=as_of, since=since, until=until, target_stage=models.target_stage,
        horizon_days=models.horizon_days, leads=big_n, conversions=big_k, base_rate=base,
        base_low=base_low, base_high=base_high, min_support=min_support, alpha=alpha,
        confidence=confidence, fields=field_tests, tested=len(segments), significant=significant,
        segments=shown[:limit] if limit is not None else shown,
    )  # fmt: skip


def _segments_sql(filters: Sequence[str]) -> str:
    """The segment query, restricted to the leads whose facts match the named filters.

    >>> "lead_facts" in _segments_sql([]), "{band:String}" in _segments_sql(["band"])
    (False, True)
    """
    unknown = sorted(set(filters) - set(_sql.FACTS_FILTERS))
    if unknown:
        raise ValueError(f"unknown lead filters {unknown}; choose from {list(_sql.FACTS_FILTERS)}")
    if not filters:
        return _SEGMENTS
    where = _sql.where(filters, _sql.FACTS_FILTERS, "1 = 1")
    # Fixed fragments chosen by name from the allow-list; the values are parameters.
    subquery = f"AND f.lead_id IN (SELECT lead_id FROM ({_sql.FACTS}) AS lf WHERE {where})"  # noqa: S608
    return _SEGMENTS.replace("/* leads */", subquery)


_RANK: dict[str, Any] = {
    "impact": lambda s: (-abs(s.excess_conversions), -s.leads, s.label),
    "lift": lambda s: (-abs(math.log(max(s.lift, 1e-9))), -s.leads, s.label),
    "leads": lambda s: (-s.leads, -abs(s.excess_conversions), s.label),
}


def _field_tests(
    singles: dict[_Key, tuple[int, int]], big_n: int, big_k: int, alpha: float
) -> list[FieldTest]:
    """Does conversion depend on the field at all? A chi-square test per field, then BH.

    The table's rows are the field's levels with enough support, plus the rest of the
    cohort (leads with a rarer or no value) when there is any.
    """
    levels: dict[str, list[tuple[int, int]]] = {}
    for (fields, _), nk in singles.items():
        levels.setdefault(fields[0], []).append(nk)
    p_values: dict[str, float] = {}
    for name, nks in levels.items():
        rest_n, rest_k = big_n - sum(n for n, _ in nks), big_k - sum(k for _, k in nks)
        table = [[k, n - k] for n, k in nks] + ([[rest_k, rest_n - rest_k]] if rest_n else [])
        if len(table) < 2 or big_k in (0, big_n):
            p_values[name] = 1.0
        else:
            p_values[name] = float(chi2_contingency(table, correction=False).pvalue)
    q_values = _bh(p_values)
    return [
        FieldTest(field=name, levels=len(levels[name]), p_value=p_values[name], q_value=q,
                  significant=q <= alpha)
        for name, q in sorted(q_values.items(), key=lambda item: (item[1], item[0]))
    ]  # fmt: skip


def _test(
    counts: dict[_Key, tuple[int, int]],
    big_n: int,
    big_k: int,
    alpha: float,
    confidence: float,
) -> tuple[list[FieldTest], list[Segment]]:
    """Fields, then their values, then pairs of significant values; each level under BH.

    A value is tested only if its field matters at all (chi-square over the field's
    values), and a pair only when both of its parts were significant on their own
    (strong heredity). A field with no effect then has one chance to pass, not one per
    value; and it cannot be carried into significance by a strong partner
    (``referral & utm_content=x`` against the base rate).
    """
    singles = {key: nk for key, nk in counts.items() if len(key[0]) == 1}
    field_tests = _field_tests(singles, big_n, big_k, alpha)
    gated = {t.field for t in field_tests if t.significant}
    p_single = {
        key: _two_sided_p(k, n, big_k - k, big_n - n)
        for key, (n, k) in singles.items()
        if key[0][0] in gated
    }
    q_single = _bh(p_single)
    winners = {key for key, q in q_single.items() if q <= alpha}
    p_pair: dict[_Key, float] = {}
    parts: dict[_Key, float] = {}
    base = big_k / big_n
    for key, (n, k) in counts.items():
        fields, values = key
        if len(fields) != 2:
            continue
        parents = [((f,), (v,)) for f, v in zip(fields, values, strict=True)]
        if not all(parent in winners for parent in parents):
            continue
        # Intersection-union: the pair must differ from the rest of the cohort and from
        # each part without it; its p-value is the largest of the three.
        p = _two_sided_p(k, n, big_k - k, big_n - n)
        rates = []
        for parent in parents:
            pn, pk = singles[parent]
            p = max(p, _two_sided_p(k, n, pk - k, pn - n))
            rates.append(pk / pn)
        p_pair[key] = p
        parts[key] = max(rates) if k / n >= base else min(rates)
    q_pair = _bh(p_pair)
    out = []
    for key, q in (*q_single.items(), *q_pair.items()):
        fields, values = key
        n, k = counts[key]
        rate = k / n
        low, high = wilson_interval(k, n, confidence)
        ref = parts.get(key)
        out.append(
            Segment(
                fields=fields, values=values, leads=n, conversions=k, rate=rate,
                rate_low=low, rate_high=high,
                lift=rate / base if base else 0.0,
                lift_low=low / base if base else 0.0,
                lift_high=high / base if base else 0.0,
                excess_conversions=k - n * base,
                p_value=p_single[key] if len(fields) == 1 else p_pair[key], q_value=q,
                significant=q <= alpha, direction="higher" if rate >= base else "lower",
                lift_over_parts=rate / ref if ref else None,
            )
        )  # fmt: skip
    return field_tests, out


def _bh(p_values: dict[_T, float]) -> dict[_T, float]:
    """Benjamini–Hochberg adjusted p-values (q-values), by key."""
    if not p_values:
        return {}
    q = false_discovery_control(list(p_values.values()), method="bh")
    return {key: float(v) for key, v in zip(p_values, q, strict=True)}


def recent_lead_features(
    client: Client, database: str, *, limit: int = 5000, since: datetime | None = None
) -> list[dict[str, float]]:
    """Features of the most recent lead events, as the scorer computes them.

    Engagement is the lead's touchpoints up to the event's own time (event time: the
    scorer saw the touchpoints processed before it, which is close to this).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    result = client.query(
        _RECENT, parameters={"db": database, "since": since or _EPOCH, "limit": limit}
    )
    names = result.column_names
    out = []
    for row in result.result_rows:
        record = dict(zip(names, row, strict=True))
        touches = record.pop("t") or record.pop("t.t", None) or []
        lead: dict[str, Any] = orjson.loads(record.pop("attributes") or "{}")
        lead.update(record)
        at = lead["occurred_at"]
        engagement: dict[str, float] = dict.fromkeys(TOUCHPOINT_EVENT_TYPES, 0.0)
        for kind, ts in touches:
            if ts <= at and kind in engagement:
                engagement[kind] += 1.0
        out.append(lead_features(lead, engagement))
    return out


def importance_report(
    client: Client,
    database: str,
    model: Explainer,
    model_version: int,
    *,
    limit: int = 5000,
    since: datetime | None = None,
    by_field: bool = False,
) -> ImportanceReport:
    """Global importance of ``model``'s features over the ``limit`` most recent lead events."""
    samples = recent_lead_features(client, database, limit=limit, since=since)
    return ImportanceReport(
        model_version=model_version,
        leads=len(samples),
        by_field=by_field,
        features=feature_importance(model, samples, by_field=by_field),
    )


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
