"""The SQL of multi-touch attribution: fixed texts with server-side parameters.

A *journey* is what touched a lead up to a conversion: the lead's creation (its
own channel and campaign: the first touch), then its touchpoints, each with its
own ``channel`` and ``campaign_id`` or, when a touchpoint has no channel, the
lead's. Only touches within ``lookback`` days before the conversion count.
A conversion is the first time a lead reached a stage (``sql``, ``opportunity``,
``won``; ``won`` carries the revenue) inside the period.

:data:`RULE_CREDITS` gives each touch of each converting journey its weight under
every rule-based model at once (one pass); :data:`JOURNEY_CELLS` counts the
journeys of the period's leads, converting or not, for the data-driven models.
Parameters: ``db`` (Identifier), ``start`` and ``end`` (Date, both included),
``lookback`` (UInt32, days), ``half_life`` (Float64, days).
"""

from __future__ import annotations

#: The rule-based models, in the order of the weight tuple of RULE_CREDITS.
RULE_MODELS: tuple[str, ...] = (
    "first_touch", "last_touch", "last_non_direct", "linear", "time_decay", "position_based",
)  # fmt: skip
#: The stages a journey can end in.
STAGES: tuple[str, ...] = ("sql", "opportunity", "won")

# The first lead_created event of every lead: when, and by which channel and campaign.
_LEADS = """
    lead0 AS (
        SELECT lead_id, min(occurred_at) AS created_at,
               argMin(channel, occurred_at) AS lch, argMin(campaign_id, occurred_at) AS lcamp
        FROM {db:Identifier}.leads
        WHERE event_type = 'lead_created'
        GROUP BY lead_id
    )"""

_PERIOD = """
    toDateTime64({start:Date}, 3, 'UTC') AS period_start,
    toDateTime64({end:Date} + 1, 3, 'UTC') AS period_end"""

# The first time each lead reached each stage, with the won deal's revenue.
_CONVERSIONS = """
    conv AS (
        SELECT lead_id, stage, min(occurred_at) AS conv_at,
               max(toFloat64(ifNull(revenue, 0))) AS rev
        FROM {db:Identifier}.conversions FINAL
        WHERE stage IN ('sql', 'opportunity', 'won')
        GROUP BY lead_id, stage
    )"""

_RULE_BODY = """
    touch AS (
        SELECT lead_id, created_at AS t, lch AS ch, lcamp AS camp FROM lead0
        UNION ALL
        SELECT tp.lead_id, tp.occurred_at, ifNull(tp.channel, l.lch),
               if(tp.channel IS NULL, l.lcamp, tp.campaign_id)
        FROM {db:Identifier}.touchpoints AS tp FINAL
        INNER JOIN lead0 AS l ON l.lead_id = tp.lead_id
    ),
    journeys AS (
        SELECT c.lead_id, c.stage AS stage, c.conv_at AS conv_at, c.rev AS rev,
               arraySort(x -> x.1, groupArray((t.t, t.ch, t.camp))) AS path
        FROM conv AS c INNER JOIN touch AS t ON t.lead_id = c.lead_id
        WHERE c.conv_at >= period_start AND c.conv_at < period_end
          AND t.t <= c.conv_at AND t.t >= c.conv_at - toIntervalDay({lookback:UInt32})
        GROUP BY c.lead_id, c.stage, c.conv_at, c.rev
    )
SELECT stage, p.2 AS channel, p.3 AS campaign,
       sum(w.1), sum(w.2), sum(w.3), sum(w.4), sum(w.5), sum(w.6),
       sum(w.1 * rev), sum(w.2 * rev), sum(w.3 * rev), sum(w.4 * rev), sum(w.5 * rev),
       sum(w.6 * rev)
FROM (
    SELECT stage, rev, path, length(path) AS n,
           arrayLastIndex(x -> x.2 != 'direct', path) AS k,
           -- Halved per half-life before the last touch (not the conversion): the same
           -- shares, and no underflow to 0/0 when every touch is many half-lives old.
           arrayMap(x -> exp2(-dateDiff('second', x.1, path[-1].1) / (86400 * {half_life:Float64})),
                    path) AS decay,
           arraySum(decay) AS dsum,
           arrayMap(i -> (
               toFloat64(i = 1),
               toFloat64(i = n),
               toFloat64(i = if(k = 0, n, k)),
               1 / n,
               decay[i] / dsum,
               multiIf(n = 1, 1.0, n = 2, 0.5, i = 1 OR i = n, 0.4, 0.2 / (n - 2))
           ), arrayEnumerate(path)) AS ws
    FROM journeys
)
ARRAY JOIN path AS p, ws AS w
GROUP BY stage, channel, campaign
ORDER BY stage, channel, campaign"""

# Per stage, the journeys of the leads the period can convert (created from `lookback`
# days before its start to its end, not converted before it), counted by creating channel,
# the set of later non-direct channels, the ordered non-direct path (repeats in a row
# collapsed) and whether the lead converted in the period. A journey ends at the
# conversion, or at the period's end.
_CELLS_BODY = """
    later AS (
        SELECT tp.lead_id AS lead_id,
               arraySort(x -> x.1, groupArray((tp.occurred_at, ifNull(tp.channel, l.lch)))) AS ts
        FROM {db:Identifier}.touchpoints AS tp FINAL
        INNER JOIN lead0 AS l ON l.lead_id = tp.lead_id
        WHERE ifNull(tp.channel, l.lch) != 'direct'
        GROUP BY lead_id
    ),
    pop AS (
        SELECT l.lead_id AS lead_id, l.lch AS lch, l.stage AS stage,
               c.lead_id != '' AND c.conv_at >= period_start AND c.conv_at < period_end
                   AS converted,
               if(converted, c.conv_at, period_end) AS end_at
        FROM (SELECT lead_id, created_at, lch, stage
              FROM lead0 ARRAY JOIN ['sql', 'opportunity', 'won'] AS stage) AS l
        LEFT JOIN conv AS c ON c.lead_id = l.lead_id AND c.stage = l.stage
        WHERE l.created_at < period_end
          AND l.created_at >= period_start - toIntervalDay({lookback:UInt32})
          AND NOT (c.lead_id != '' AND c.conv_at < period_start)
    )
SELECT stage, lch, arraySort(arrayDistinct(chans)) AS later_set,
       arrayFilter((x, i) -> i = 1 OR x != full[i - 1], full, arrayEnumerate(full)) AS seq,
       converted, count()
FROM (
    SELECT p.stage AS stage, p.lch AS lch, p.converted AS converted,
           arrayMap(x -> x.2, arrayFilter(
               x -> x.1 <= p.end_at AND x.1 >= p.end_at - toIntervalDay({lookback:UInt32}),
               lt.ts)) AS chans,
           arrayConcat([p.lch], chans) AS full
    FROM pop AS p LEFT JOIN later AS lt ON lt.lead_id = p.lead_id
)
GROUP BY stage, lch, later_set, seq, converted"""

_LEADS_BODY = """
SELECT lch, lcamp, count() FROM lead0
WHERE created_at >= period_start AND created_at < period_end
GROUP BY lch, lcamp"""

#: Spend in the period by campaign.
SPEND = """
SELECT campaign_id, any(channel), sum(toFloat64(amount))
FROM {db:Identifier}.spend FINAL
WHERE date BETWEEN {start:Date} AND {end:Date}
GROUP BY campaign_id"""


def _with(*ctes: str) -> str:
    """``WITH`` and the fragments, comma-separated (fixed texts of this module only)."""
    return "WITH " + ",".join(ctes)


# Per (stage, channel, campaign): the credit of every rule-based model, for conversions
# (w.1 .. w.6) and for revenue (the same weights times the won deal's revenue).
RULE_CREDITS = _with(_PERIOD, _LEADS, _CONVERSIONS) + "," + _RULE_BODY
JOURNEY_CELLS = _with(_PERIOD, _LEADS, _CONVERSIONS) + "," + _CELLS_BODY
#: Leads created in the period, by their own channel and campaign.
LEADS = _with(_PERIOD, _LEADS) + _LEADS_BODY
