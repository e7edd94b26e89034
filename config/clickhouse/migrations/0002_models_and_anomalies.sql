-- Tables shared by the learner (model metrics, promotions) and the anomaly
-- agents. Ids are deterministic, so a replayed batch is one row with FINAL.

-- Detected anomalies and drift. `anomaly_id` is a hash of (kind, series,
-- window_start), so the same detection replayed is one row.
CREATE TABLE IF NOT EXISTS {db}.anomalies (
    anomaly_id String,
    kind LowCardinality(String),          -- volume_spike, volume_drop, conversion_drop, conversion_spike, cpl_spike, cpa_spike, score_shift, rejected_share, lateness, feature_drift, model_drift
    series String,                        -- e.g. 'channel=paid_search/lead_volume'
    dimension LowCardinality(String),     -- overall, channel, campaign, feature, model
    dimension_value String,
    metric LowCardinality(String),        -- lead_volume, conversion_rate, cost_per_lead, ...
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    value Float64,
    expected Float64,
    expected_low Float64,
    expected_high Float64,
    severity LowCardinality(String),      -- info, warning, critical
    direction LowCardinality(String),     -- up, down
    opportunity Bool,                     -- good news (a campaign converting far above normal)
    description String,
    detected_at DateTime64(3, 'UTC'),
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (kind, series, window_start, anomaly_id);

-- Prequential metrics of every model (champion and challengers), per snapshot,
-- over a rolling window and overall. Classification and revenue metrics share
-- the row; the ones that do not apply are NULL.
CREATE TABLE IF NOT EXISTS {db}.model_metrics (
    model_name LowCardinality(String),
    role LowCardinality(String),          -- champion, challenger
    model_version UInt64,
    scope LowCardinality(String),         -- rolling, overall
    recorded_at DateTime64(3, 'UTC'),
    examples UInt64,
    positives UInt64,
    auc Nullable(Float64),
    logloss Nullable(Float64),
    brier Nullable(Float64),
    threshold Nullable(Float64),
    precision Nullable(Float64),
    recall Nullable(Float64),
    f1 Nullable(Float64),
    calibration String,                   -- JSON: [{"bin_low", "bin_high", "n", "mean_score", "positive_rate"}]
    rmse Nullable(Float64),
    mae Nullable(Float64),
    r2 Nullable(Float64)
) ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (model_name, scope, model_version, recorded_at);

-- Every champion change, automatic or by command, with its evidence.
CREATE TABLE IF NOT EXISTS {db}.model_promotions (
    promotion_id String,
    at DateTime64(3, 'UTC'),
    action LowCardinality(String),        -- promote, rollback
    from_model String,
    to_model String,
    from_version UInt64,
    to_version UInt64,
    actor String,                         -- 'learner' or the user's command
    evidence String                       -- JSON: metrics of both, window, margin, test used
) ENGINE = ReplacingMergeTree(at)
ORDER BY (at, promotion_id);
