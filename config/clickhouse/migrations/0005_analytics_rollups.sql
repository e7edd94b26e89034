-- Analytics store: rollups maintained by materialized views, read by the
-- dashboard, the JSON API and the reports (reporting/queries.py).
-- docs/analytics-store.md explains the choices.
--
-- Replays: the sinks deliver at least once, so the same event can be inserted
-- into a base table more than once (a replayed batch, a re-sent event). A
-- materialized view sees every insert, so nothing here counts rows: counts are
-- exact distinct counts of ids (uniqExact states), and everything else is an
-- idempotent aggregate (min, max, argMax) that a second copy of a row cannot change.
-- The one exception is the score sum used for mean scores in scores_hourly, whose
-- error under replays is bounded and measured (see the document).

-- One row per lead once merged: its dimensions (from `leads`), its latest score
-- (from `scored_leads`) and the first time it reached each stage (from
-- `conversions`). Conversions carry no channel or segment, and they can arrive
-- before their lead: three views write partial rows keyed by lead_id and merges
-- combine them, whatever the order. Dimensions use `max`, which ignores the
-- empty value the other two views write.
CREATE TABLE IF NOT EXISTS {db}.lead_facts (
    lead_id String,
    created_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    channel SimpleAggregateFunction(max, LowCardinality(String)),
    campaign_id SimpleAggregateFunction(max, String),
    industry SimpleAggregateFunction(max, LowCardinality(String)),
    country SimpleAggregateFunction(max, LowCardinality(String)),
    size_bucket SimpleAggregateFunction(max, LowCardinality(String)),
    seniority SimpleAggregateFunction(max, LowCardinality(String)),
    score AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    band AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    reasons AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    model_version SimpleAggregateFunction(max, UInt32),
    scored_at SimpleAggregateFunction(max, Nullable(DateTime64(3, 'UTC'))),
    mql_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    sql_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    opportunity_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    won_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    lost_at SimpleAggregateFunction(min, Nullable(DateTime64(3, 'UTC'))),
    revenue SimpleAggregateFunction(max, Nullable(Float64))
) ENGINE = AggregatingMergeTree
ORDER BY lead_id
-- As long as the raw lead (0008_privacy); a partial row without its lead yet never expires.
TTL toDateTime(ifNull(created_at, now64(3))) + toIntervalDay(730);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.lead_facts_from_leads TO {db}.lead_facts AS
SELECT
    lead_id,
    if(event_type = 'lead_created', occurred_at, NULL) AS created_at,
    ch AS channel,
    camp AS campaign_id,
    ifNull(ind, '') AS industry,
    ifNull(ctry, '') AS country,
    multiIf(size IS NULL, '', size <= 10, '1-10', size <= 50, '11-50', size <= 200, '51-200',
            size <= 1000, '201-1000', size <= 5000, '1001-5000', '5000+') AS size_bucket,
    ifNull(sen, '') AS seniority
FROM (
    SELECT lead_id, event_type, occurred_at, channel AS ch, campaign_id AS camp, industry AS ind,
           country AS ctry, company_size AS size, seniority AS sen
    FROM {db}.leads
);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.lead_facts_from_scores TO {db}.lead_facts AS
SELECT
    lead_id,
    argMaxState(s, t) AS score,
    argMaxState(b, t) AS band,
    argMaxState(r, t) AS reasons,
    max(v) AS model_version,
    max(t) AS scored_at
FROM (
    SELECT lead_id, score AS s, toString(band) AS b, reasons AS r, model_version AS v, scored_at AS t
    FROM {db}.scored_leads
)
GROUP BY lead_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.lead_facts_from_conversions TO {db}.lead_facts AS
SELECT
    lead_id,
    minIfOrNull(t, st = 'mql') AS mql_at,
    minIfOrNull(t, st = 'sql') AS sql_at,
    minIfOrNull(t, st = 'opportunity') AS opportunity_at,
    minIfOrNull(t, st = 'won') AS won_at,
    minIfOrNull(t, st = 'lost') AS lost_at,
    maxIfOrNull(rev, st = 'won') AS revenue
FROM (
    SELECT lead_id, toString(stage) AS st, occurred_at AS t, toFloat64(revenue) AS rev
    FROM {db}.conversions
)
GROUP BY lead_id;

-- New leads per day × channel × campaign, once overall (dim = 'all') and once per
-- main segment dimension (dim = industry | country | size | seniority), like
-- GROUPING SETS: a filter on one segment reads ~10 rows per day and campaign
-- instead of the cross product of four dimensions.
CREATE TABLE IF NOT EXISTS {db}.leads_daily (
    day Date,
    channel LowCardinality(String),
    campaign_id String,
    dim LowCardinality(String),
    dim_value LowCardinality(String),
    leads AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (dim, dim_value, day, channel, campaign_id)
TTL day + INTERVAL 5 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.leads_daily_mv TO {db}.leads_daily AS
SELECT
    toDate(occurred_at) AS day,
    channel,
    campaign_id,
    d.1 AS dim,
    d.2 AS dim_value,
    uniqExactState(lead_id) AS leads
FROM {db}.leads
ARRAY JOIN [
    ('all', ''),
    ('industry', ifNull(industry, '')),
    ('country', ifNull(country, '')),
    ('size', multiIf(company_size IS NULL, '', company_size <= 10, '1-10',
                     company_size <= 50, '11-50', company_size <= 200, '51-200',
                     company_size <= 1000, '201-1000', company_size <= 5000, '1001-5000',
                     '5000+')),
    ('seniority', ifNull(seniority, ''))
] AS d
WHERE event_type = 'lead_created'
GROUP BY day, channel, campaign_id, dim, dim_value;

-- New leads per hour × channel × campaign (live views and short ranges).
CREATE TABLE IF NOT EXISTS {db}.leads_hourly (
    hour DateTime('UTC'),
    channel LowCardinality(String),
    campaign_id String,
    leads AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, channel, campaign_id)
TTL hour + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.leads_hourly_mv TO {db}.leads_hourly AS
SELECT toStartOfHour(occurred_at) AS hour, channel, campaign_id, uniqExactState(lead_id) AS leads
FROM {db}.leads
WHERE event_type = 'lead_created'
GROUP BY hour, channel, campaign_id;

-- Scored leads per day × channel × campaign × band × score bin (twentieths):
-- the histogram, the band mix and the mean score. `scored` counts distinct
-- scoring events (a lead re-scored after an update counts again, a replayed row
-- does not); score_sum / rows is the mean score (see the note at the top).
CREATE TABLE IF NOT EXISTS {db}.scores_daily (
    day Date,
    channel LowCardinality(String),
    campaign_id String,
    band LowCardinality(String),
    score_bin UInt8,
    scored AggregateFunction(uniqExact, String),
    rows SimpleAggregateFunction(sum, UInt64),
    score_sum SimpleAggregateFunction(sum, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYear(day)
ORDER BY (day, channel, campaign_id, band, score_bin)
TTL day + INTERVAL 5 YEAR;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.scores_daily_mv TO {db}.scores_daily AS
SELECT
    toDate(occurred_at) AS day,
    channel,
    campaign_id,
    b AS band,
    toUInt8(least(19, floor(s * 20))) AS score_bin,
    uniqExactState(event_id) AS scored,
    count() AS rows,
    sum(s) AS score_sum
FROM (SELECT occurred_at, channel, campaign_id, toString(band) AS b, score AS s, event_id
      FROM {db}.scored_leads)
GROUP BY day, channel, campaign_id, band, score_bin;

-- The same per hour without the bins, for the live view of the last hours.
CREATE TABLE IF NOT EXISTS {db}.scores_hourly (
    hour DateTime('UTC'),
    channel LowCardinality(String),
    campaign_id String,
    band LowCardinality(String),
    scored AggregateFunction(uniqExact, String),
    rows SimpleAggregateFunction(sum, UInt64),
    score_sum SimpleAggregateFunction(sum, Float64)
) ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, channel, campaign_id, band)
TTL hour + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.scores_hourly_mv TO {db}.scores_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour,
    channel,
    campaign_id,
    b AS band,
    uniqExactState(event_id) AS scored,
    count() AS rows,
    sum(s) AS score_sum
FROM (SELECT occurred_at, channel, campaign_id, toString(band) AS b, score AS s, event_id
      FROM {db}.scored_leads)
GROUP BY hour, channel, campaign_id, band;

-- Per lead, merged: what the two cohort rollups below aggregate. A plain view, read
-- only by their refreshes.
CREATE VIEW IF NOT EXISTS {db}.lead_outcomes AS
SELECT
    created_at, channel, campaign_id, industry, country, size_bucket, seniority,
    if(finalizeAggregation(band) = '', '-', finalizeAggregation(band)) AS band,
    finalizeAggregation(score) AS score,
    mql_at, sql_at, opportunity_at, won_at, lost_at, revenue,
    multiIf(won_at IS NOT NULL OR opportunity_at IS NOT NULL, 3, sql_at IS NOT NULL, 2,
            mql_at IS NOT NULL, 1, 0) AS reached,
    [0, 0.5, 1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90] AS bins,
    if(mql_at IS NULL, 0, arrayLastIndex(x -> x <= dateDiff('second', created_at, mql_at) / 86400, bins)) AS b_days_to_mql,
    if(mql_at IS NULL OR sql_at IS NULL, 0, arrayLastIndex(x -> x <= dateDiff('second', mql_at, sql_at) / 86400, bins)) AS b_days_mql_to_sql,
    if(sql_at IS NULL OR opportunity_at IS NULL, 0, arrayLastIndex(x -> x <= dateDiff('second', sql_at, opportunity_at) / 86400, bins)) AS b_days_sql_to_opportunity,
    if(opportunity_at IS NULL OR won_at IS NULL, 0, arrayLastIndex(x -> x <= dateDiff('second', opportunity_at, won_at) / 86400, bins)) AS b_days_opportunity_to_won
FROM {db}.lead_facts FINAL
WHERE created_at IS NOT NULL;

-- The funnel per cohort: leads created on a day × channel × campaign × band, how
-- many reached each stage, their revenue, and histograms of the days between
-- stages (bins of DAY_BINS in reporting/queries.py; medians are read from them).
-- Recomputed from lead_facts FINAL by a refreshable materialized view: exact
-- whatever the replays and the order outcomes arrive in, at the price of up to
-- the refresh interval of lag (new leads and scores are live through the
-- incremental views above).
CREATE TABLE IF NOT EXISTS {db}.funnel_daily (
    day Date,
    channel LowCardinality(String),
    campaign_id String,
    band LowCardinality(String),
    leads UInt64,
    mql UInt64,
    sql UInt64,
    opportunity UInt64,
    won UInt64,
    lost UInt64,
    revenue Float64,
    score_sum Float64,
    days_to_mql Array(UInt64),
    days_mql_to_sql Array(UInt64),
    days_sql_to_opportunity Array(UInt64),
    days_opportunity_to_won Array(UInt64)
) ENGINE = MergeTree
ORDER BY (day, channel, campaign_id, band);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.funnel_daily_mv
REFRESH EVERY 10 SECOND TO {db}.funnel_daily AS
SELECT
    toDate(created_at) AS day,
    channel,
    campaign_id,
    band,
    count() AS leads,
    countIf(reached >= 1) AS mql,
    countIf(reached >= 2) AS sql,
    countIf(reached >= 3) AS opportunity,
    countIf(won_at IS NOT NULL) AS won,
    countIf(lost_at IS NOT NULL AND won_at IS NULL) AS lost,
    sum(ifNull(revenue, 0)) AS revenue,
    sum(score) AS score_sum,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_to_mql), range(1, 15))) AS days_to_mql,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_mql_to_sql), range(1, 15))) AS days_mql_to_sql,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_sql_to_opportunity), range(1, 15))) AS days_sql_to_opportunity,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_opportunity_to_won), range(1, 15))) AS days_opportunity_to_won
FROM {db}.lead_outcomes
GROUP BY day, channel, campaign_id, band;

-- The same per main segment field (grouping sets: dim = industry | country |
-- size_bucket | seniority), so a filter or grouping on one segment field reads
-- a rollup too. It is about four times the work of funnel_daily to rebuild, so
-- it refreshes less often; two or more segment filters read lead_facts.
CREATE TABLE IF NOT EXISTS {db}.funnel_segments_daily (
    dim LowCardinality(String),
    dim_value LowCardinality(String),
    day Date,
    channel LowCardinality(String),
    campaign_id String,
    band LowCardinality(String),
    leads UInt64,
    mql UInt64,
    sql UInt64,
    opportunity UInt64,
    won UInt64,
    lost UInt64,
    revenue Float64,
    score_sum Float64,
    days_to_mql Array(UInt64),
    days_mql_to_sql Array(UInt64),
    days_sql_to_opportunity Array(UInt64),
    days_opportunity_to_won Array(UInt64)
) ENGINE = MergeTree
ORDER BY (dim, dim_value, day, channel, campaign_id, band);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.funnel_segments_daily_mv
REFRESH EVERY 60 SECOND TO {db}.funnel_segments_daily AS
SELECT
    d.1 AS dim,
    d.2 AS dim_value,
    toDate(created_at) AS day,
    channel,
    campaign_id,
    band,
    count() AS leads,
    countIf(reached >= 1) AS mql,
    countIf(reached >= 2) AS sql,
    countIf(reached >= 3) AS opportunity,
    countIf(won_at IS NOT NULL) AS won,
    countIf(lost_at IS NOT NULL AND won_at IS NULL) AS lost,
    sum(ifNull(revenue, 0)) AS revenue,
    sum(score) AS score_sum,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_to_mql), range(1, 15))) AS days_to_mql,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_mql_to_sql), range(1, 15))) AS days_mql_to_sql,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_sql_to_opportunity), range(1, 15))) AS days_sql_to_opportunity,
    sumForEach(arrayMap(i -> toUInt64(i = b_days_opportunity_to_won), range(1, 15))) AS days_opportunity_to_won
FROM {db}.lead_outcomes
ARRAY JOIN [('industry', industry), ('country', country), ('size_bucket', size_bucket),
            ('seniority', seniority)] AS d
GROUP BY dim, dim_value, day, channel, campaign_id, band
