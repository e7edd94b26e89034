"""The SQL of the analytics views: fixed texts with server-side parameters.

Nothing a caller passes is pasted into these texts. A filter that is set adds
one of the fixed fragments below (chosen by the filter's name from an
allow-list); its value travels as a ``{name:Type}`` parameter. The database
name is a server-side ``Identifier`` parameter too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Bins (days, lower bounds) of the stage-to-stage histograms in funnel_daily.
DAY_BINS: tuple[float, ...] = (0, 0.5, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90)

# Condition fragments per filter name, for each kind of source.
ROLLUP_FILTERS: Mapping[str, str] = {
    "channel": "channel = {channel:String}",
    "campaign_id": "campaign_id = {campaign_id:String}",
    "band": "band = {band:String}",
}
FACTS_FILTERS: Mapping[str, str] = {
    **ROLLUP_FILTERS,
    "industry": "industry = {industry:String}",
    "country": "country = {country:String}",
    "size_bucket": "size_bucket = {size_bucket:String}",
    "seniority": "seniority = {seniority:String}",
}
SPEND_FILTERS: Mapping[str, str] = {
    "channel": "channel = {channel:String}",
    "campaign_id": "campaign_id = {campaign_id:String}",
}
# funnel_segments_daily holds one segment field per row set (dim), its value in dim_value.
SEGMENT_FILTERS: Mapping[str, str] = {
    **ROLLUP_FILTERS,
    "industry": "dim_value = {industry:String}",
    "country": "dim_value = {country:String}",
    "size_bucket": "dim_value = {size_bucket:String}",
    "seniority": "dim_value = {seniority:String}",
}
#: The cohort rollups, by whether one segment field is involved.
COHORT_TABLES: Mapping[bool, str] = {False: "funnel_daily", True: "funnel_segments_daily"}
#: Group-by expressions by dimension name (the allow-list of identifiers).
ROLLUP_GROUPS: Mapping[str, str] = {
    "none": "''",
    "channel": "channel",
    "campaign_id": "campaign_id",
    "band": "band",
}
SEGMENT_GROUPS: Mapping[str, str] = {
    **ROLLUP_GROUPS,
    "industry": "dim_value",
    "country": "dim_value",
    "size_bucket": "dim_value",
    "seniority": "dim_value",
}
FACTS_GROUPS: Mapping[str, str] = {
    **ROLLUP_GROUPS,
    "industry": "industry",
    "country": "country",
    "size_bucket": "size_bucket",
    "seniority": "seniority",
}


def where(names: Iterable[str], fragments: Mapping[str, str], base: str) -> str:
    """``base`` AND the fragment of every filter in ``names`` (a KeyError for any other).

    >>> where(["channel"], ROLLUP_FILTERS, "day >= {start:Date}")
    'day >= {start:Date} AND channel = {channel:String}'
    """
    return " AND ".join([base, *(fragments[name] for name in names)])


# Per lead, once merged: the dimensions, the latest score and band, the stage times.
FACTS = """
    SELECT lead_id, created_at, channel, campaign_id, industry, country, size_bucket, seniority,
           finalizeAggregation(score) AS score,
           if(finalizeAggregation(band) = '', '-', finalizeAggregation(band)) AS band,
           finalizeAggregation(reasons) AS reasons, model_version,
           mql_at, sql_at, opportunity_at, won_at, lost_at, revenue,
           multiIf(won_at IS NOT NULL OR opportunity_at IS NOT NULL, 3, sql_at IS NOT NULL, 2,
                   mql_at IS NOT NULL, 1, 0) AS reached
    FROM {db:Identifier}.lead_facts FINAL
    WHERE created_at IS NOT NULL"""

# Per (cohort day, campaign, group): lead counts by stage reached, revenue, score sum.
COHORT_ROWS_ROLLUP = """
    SELECT day, campaign_id, any(channel) AS ch, {group} AS g,
           sum(leads), sum(mql), sum(sql), sum(opportunity), sum(won), sum(lost), sum(revenue),
           sum(score_sum)
    FROM {{db:Identifier}}.{table}
    WHERE {where}
    GROUP BY day, campaign_id, g"""

COHORT_ROWS_FACTS = """
    SELECT toDate(created_at) AS day, campaign_id, any(channel) AS ch, {group} AS g,
           count(), countIf(reached >= 1), countIf(reached >= 2), countIf(reached >= 3),
           countIf(won_at IS NOT NULL), countIf(lost_at IS NOT NULL AND won_at IS NULL),
           sum(ifNull(revenue, 0)), sum(score)
    FROM ({facts}) AS f
    WHERE {where}
    GROUP BY day, campaign_id, g"""

# All leads per campaign in the period: the denominator that shares spend out.
COHORT_TOTALS = """
    SELECT campaign_id, sum(leads)
    FROM {db:Identifier}.funnel_daily
    WHERE day BETWEEN {start:Date} AND {end:Date}
    GROUP BY campaign_id"""

SPEND = """
    SELECT date, campaign_id, any(channel), sum(toFloat64(amount))
    FROM {{db:Identifier}}.spend FINAL
    WHERE {where}
    GROUP BY date, campaign_id"""

STAGE_DAYS_ROLLUP = """
    SELECT sumForEach(days_to_mql), sumForEach(days_mql_to_sql),
           sumForEach(days_sql_to_opportunity), sumForEach(days_opportunity_to_won)
    FROM {{db:Identifier}}.{table}
    WHERE {where}"""

STAGE_DAYS_FACTS = """
    SELECT quantileExactIf(0.5)(dateDiff('second', created_at, mql_at) / 86400, mql_at IS NOT NULL),
           quantileExactIf(0.5)(dateDiff('second', mql_at, sql_at) / 86400,
                                mql_at IS NOT NULL AND sql_at IS NOT NULL),
           quantileExactIf(0.5)(dateDiff('second', sql_at, opportunity_at) / 86400,
                                sql_at IS NOT NULL AND opportunity_at IS NOT NULL),
           quantileExactIf(0.5)(dateDiff('second', opportunity_at, won_at) / 86400,
                                opportunity_at IS NOT NULL AND won_at IS NOT NULL)
    FROM ({facts}) AS f
    WHERE {where}"""

HISTOGRAM_ROLLUP = """
    SELECT score_bin, uniqExactMerge(scored), sum(score_sum), sum(rows)
    FROM {{db:Identifier}}.scores_daily
    WHERE {where}
    GROUP BY score_bin ORDER BY score_bin"""

HISTOGRAM_FACTS = """
    SELECT toUInt8(least(19, floor(score * 20))) AS score_bin, count(), sum(score), count()
    FROM ({facts}) AS f
    WHERE {where} AND band != '-'
    GROUP BY score_bin ORDER BY score_bin"""

LIVE_HOURLY = """
    SELECT hour, uniqExactMerge(leads)
    FROM {{db:Identifier}}.leads_hourly
    WHERE {where}
    GROUP BY hour ORDER BY hour"""

ANOMALIES = """
    SELECT anomaly_id, kind, series, dimension, dimension_value, metric, window_start, window_end,
           value, expected, expected_low, expected_high, severity, direction, opportunity,
           description, detected_at
    FROM {{db:Identifier}}.anomalies FINAL
    WHERE {where}
    ORDER BY window_start DESC, anomaly_id
    LIMIT {{limit:UInt32}}"""

ANOMALY_SCOPE = (
    "(dimension NOT IN ('channel', 'campaign') OR dimension_value IN "
    "({channel:String}, {campaign_id:String}))"
)

# The first and last day with leads, in event time (count 0: no data, and no days).
DATA_SPAN = """
    SELECT min(day), max(day), count()
    FROM {db:Identifier}.leads_daily
    WHERE dim = 'all'"""

MODEL_HEALTH = """
    SELECT recorded_at, model_name, role, model_version, scope, examples, positives,
           auc, logloss, brier, precision, recall, f1
    FROM {db:Identifier}.model_metrics FINAL
    WHERE recorded_at >= {since:DateTime64(3)} AND recorded_at < {until:DateTime64(3)}
    ORDER BY recorded_at DESC, model_name, scope
    LIMIT {limit:UInt32}"""

# The published scores against the outcomes: one row per lead (the latest label).
PUBLISHED_SCORES = """
    SELECT count(), sum(label),
           if(countIf(label = 1) > 0 AND countIf(label = 0) > 0,
              arrayAUC(groupArray(score), groupArray(label)), NULL)
    FROM {db:Identifier}.training_examples FINAL
    WHERE scored_at >= {since:DateTime64(3)} AND scored_at < {until:DateTime64(3)}"""
#: The published scores' quality by week of the leads' creation: every labelled lead's
#: published score (training_examples keeps it) against its outcome; cold-start scores out.
PUBLISHED_QUALITY = """
    SELECT toMonday(s.occurred_at) AS week, count() AS leads, avg(t.score) AS mean_predicted,
           avg(t.label) AS observed,
           -avg(if(t.label = 1, log(greatest(t.score, 1e-15)),
                   log(greatest(1 - t.score, 1e-15)))) AS logloss,
           if(min(t.label) = max(t.label), nan,
              arrayAUC(groupArray(t.score), groupArray(toUInt8(t.label)))) AS auc
    FROM {db:Identifier}.training_examples AS t FINAL
    INNER JOIN (SELECT lead_id, min(occurred_at) AS occurred_at
                FROM {db:Identifier}.scored_leads GROUP BY lead_id) AS s USING (lead_id)
    WHERE t.model_version > 0
      AND s.occurred_at >= {since:DateTime64(3)} AND s.occurred_at < {until:DateTime64(3)}
    GROUP BY week ORDER BY week"""

PROMOTIONS = """
    SELECT at, action, from_model, to_model, from_version, to_version, actor
    FROM {db:Identifier}.model_promotions FINAL
    WHERE at >= {since:DateTime64(3)} AND at < {until:DateTime64(3)}
    ORDER BY at DESC LIMIT 100"""

# Drill-down: the campaign's best-scored leads in the period from scored_leads
# (sorted by channel and time), then their facts by primary key.
TOP_SCORED = """
    SELECT lead_id, argMax(score, scored_at) AS s
    FROM {{db:Identifier}}.scored_leads
    WHERE {where}
    GROUP BY lead_id
    ORDER BY s DESC, lead_id
    LIMIT {{limit:UInt32}}"""

LEADS_BY_ID = """
    SELECT * FROM ({facts}) AS f WHERE lead_id IN {{ids:Array(String)}}"""

LEADS_FACTS = """
    SELECT * FROM ({facts}) AS f
    WHERE {where}
    ORDER BY score DESC, lead_id
    LIMIT {{limit:UInt32}}"""

OPTIONS = """
    SELECT dim, dim_value, min(day), max(day)
    FROM {db:Identifier}.leads_daily
    GROUP BY dim, dim_value"""

# Sum of the newest insert block number of every base table a view reads: it only
# grows with inserts (merges keep it).
WATERMARK = """
    SELECT sum(b) FROM (
        SELECT table, max(max_block_number) AS b
        FROM system.parts
        WHERE database = {database:String} AND active
          AND table IN ('leads', 'scored_leads', 'conversions', 'spend', 'anomalies',
                        'model_metrics', 'model_promotions')
        GROUP BY table
    )"""

# A checksum of the cohort rollups: it changes when a refresh changed their content, not
# every time the refresh rewrites the same numbers.
FUNNEL_CHECKSUM = """
    SELECT count(), sum(leads), sum(mql), sum(sql), sum(opportunity), sum(won), sum(lost),
           round(sum(revenue), 2)
    FROM (
        SELECT leads, mql, sql, opportunity, won, lost, revenue FROM {db:Identifier}.funnel_daily
        UNION ALL
        SELECT leads, mql, sql, opportunity, won, lost, revenue
        FROM {db:Identifier}.funnel_segments_daily
    )"""
