"""The recommendation engine's inputs read from ClickHouse: weekly cohorts per campaign.

For each paid campaign and each week of the look-back window: spend, leads created,
and how many of them had reached the target stage by the end of that week, one
week later, and so on up to the end of the data (``conversions`` by age, as the
model needs for maturity), plus their won revenue. Fixed SQL with server-side
parameters; the stage column comes from an allow-list.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from reporting.recommend._model import CohortStats

# The first time a lead reached the target stage or any later one (lost excluded).
_REACHED = {
    "mql": "least(ifNull(mql_at, {far}), ifNull(sql_at, {far}), ifNull(opportunity_at, {far}), ifNull(won_at, {far}))",
    "sql": "least(ifNull(sql_at, {far}), ifNull(opportunity_at, {far}), ifNull(won_at, {far}))",
    "opportunity": "least(ifNull(opportunity_at, {far}), ifNull(won_at, {far}))",
    "won": "ifNull(won_at, {far})",
}
_WEEK = 7 * 86400
_FAR = "toDateTime64('2200-01-01 00:00:00', 3, 'UTC')"

_COHORTS = """
    SELECT campaign_id, any(channel), cohort, count() AS leads,
           groupArray(if(reached <= {{as_of:DateTime64(3)}},
                         dateDiff('second', cohort_end, reached), NULL)) AS delays,
           sum(if(won_at IS NOT NULL AND won_at <= {{as_of:DateTime64(3)}}, ifNull(revenue, 0), 0))
    FROM (
        SELECT campaign_id, channel, won_at, revenue, {reached} AS reached,
               intDiv(dateDiff('day', {{start:Date}}, toDate(created_at)), 7) AS cohort,
               toDateTime64({{start:Date}}, 3, 'UTC') + toIntervalDay(cohort * 7 + 7) AS cohort_end
        FROM {{db:Identifier}}.lead_facts FINAL
        WHERE created_at >= {{since:DateTime64(3)}} AND created_at < {{until:DateTime64(3)}}
    )
    GROUP BY campaign_id, cohort"""

_SPEND = """
    SELECT campaign_id, any(channel), intDiv(dateDiff('day', {start:Date}, date), 7) AS cohort,
           sum(toFloat64(amount))
    FROM {db:Identifier}.spend FINAL
    WHERE date >= {start:Date} AND date <= {end:Date}
    GROUP BY campaign_id, cohort"""


def weekly_cohorts(
    client: Client, database: str, end: date, weeks: int, target_stage: str
) -> list[CohortStats]:
    """Cohorts of the ``weeks`` whole weeks ending on ``end`` (included), as known at its end."""
    if target_stage not in _REACHED:
        raise ValueError(f"target stage must be one of {sorted(_REACHED)}, got {target_stage!r}")
    start = end - timedelta(days=7 * weeks - 1)
    until = datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)
    params: dict[str, Any] = {
        "db": database, "start": start, "end": end,
        "since": datetime.combine(start, time(0), tzinfo=UTC), "until": until, "as_of": until,
    }  # fmt: skip
    sql = _COHORTS.format(reached=_REACHED[target_stage].format(far=_FAR))
    facts = client.query(sql, parameters=params).result_rows
    spend = {
        (str(c), int(k)): (str(ch), float(s))
        for c, ch, k, s in client.query(_SPEND, parameters=params).result_rows
    }
    out: list[CohortStats] = []
    seen: set[tuple[str, int]] = set()
    channels: dict[str, str] = defaultdict(str)
    for campaign, channel, cohort, leads, delays, revenue in facts:
        key = (str(campaign), int(cohort))
        seen.add(key)
        channels[key[0]] = str(channel)
        age_now = weeks - 1 - key[1]  # whole weeks since this cohort's week ended
        counts = [0] * (age_now + 1)
        for d in delays:  # seconds from the cohort week's end to reaching the stage
            counts[min(0 if d <= 0 else (d - 1) // _WEEK + 1, age_now)] += 1
        cumulative = tuple(sum(counts[: i + 1]) for i in range(age_now + 1))
        ch, amount = spend.get(key, (str(channel), 0.0))
        out.append(CohortStats(key[0], ch, key[1], amount, int(leads), cumulative, float(revenue)))
    for (campaign, cohort), (ch, amount) in spend.items():
        if (campaign, cohort) not in seen and amount > 0:  # spent, but no lead came in
            out.append(CohortStats(campaign, ch, cohort, amount, 0, (0,) * (weeks - cohort), 0.0))
    return sorted(out, key=lambda c: (c.campaign_id, c.period))
