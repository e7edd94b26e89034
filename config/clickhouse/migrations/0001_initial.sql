-- Raw and scored events. Every table is a ReplacingMergeTree whose sorting key
-- ends in the event's own id, so a replayed batch (at-least-once delivery) is
-- one row when read with FINAL. Personal data appears only as keyed hashes.

CREATE TABLE IF NOT EXISTS {db}.leads (
    event_id String,
    event_type LowCardinality(String),
    lead_id String,
    occurred_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    channel LowCardinality(String),
    source Nullable(String),
    campaign_id String,
    email_domain Nullable(String),
    email_is_free Bool,
    email_hash Nullable(FixedString(64)),
    phone_hash Nullable(FixedString(64)),
    company Nullable(String),
    industry LowCardinality(Nullable(String)),
    company_size Nullable(UInt32),
    country LowCardinality(Nullable(String)),
    seniority LowCardinality(Nullable(String)),
    pages_viewed UInt32,
    pricing_page_visits UInt32,
    email_opens UInt32,
    email_clicks UInt32,
    demo_requested Bool,
    attributes String
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (channel, campaign_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.touchpoints (
    event_id String,
    event_type LowCardinality(String),
    lead_id String,
    occurred_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    channel LowCardinality(Nullable(String)),
    campaign_id Nullable(String),
    attributes String
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (lead_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.conversions (
    event_id String,
    lead_id String,
    stage LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC'),
    revenue Nullable(Decimal(18, 4)),
    currency LowCardinality(Nullable(String)),
    attributes String
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (stage, occurred_at, event_id);

-- One row per campaign and day: a restated figure replaces the earlier one.
CREATE TABLE IF NOT EXISTS {db}.spend (
    event_id String,
    campaign_id String,
    channel LowCardinality(String),
    date Date,
    amount Decimal(18, 4),
    currency LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(occurred_at)
PARTITION BY toYYYYMM(date)
ORDER BY (channel, campaign_id, date);

CREATE TABLE IF NOT EXISTS {db}.scored_leads (
    event_id String,
    lead_id String,
    occurred_at DateTime64(3, 'UTC'),
    scored_at DateTime64(3, 'UTC'),
    channel LowCardinality(String),
    campaign_id String,
    score Float64,
    band LowCardinality(String),
    expected_value Float64,
    model_version UInt32,
    reasons String
) ENGINE = ReplacingMergeTree(scored_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (channel, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.rejected_events (
    source_topic LowCardinality(String),
    source_partition Int32,
    source_offset Int64,
    payload_sha256 FixedString(64),
    reason String,
    reason_code LowCardinality(String),
    payload String,
    received_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_topic, source_partition, source_offset, payload_sha256);

CREATE TABLE IF NOT EXISTS {db}.training_examples (
    lead_id String,
    label UInt8,
    score Float64,
    model_version UInt32,
    scored_at DateTime64(3, 'UTC'),
    labelled_at DateTime64(3, 'UTC'),
    revenue Nullable(Float64)
) ENGINE = ReplacingMergeTree(labelled_at)
ORDER BY lead_id;
