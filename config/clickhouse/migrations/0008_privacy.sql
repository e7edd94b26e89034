-- Privacy: default retention of every table that holds data about a person, and
-- the record of each erasure (`leadstream forget`). The worker re-applies the
-- retention in the settings (`LEADSTREAM_RETENTION__*`) at start; these are the
-- defaults, so retention holds even before that. Rows past their TTL disappear at
-- the next merge (OPTIMIZE … FINAL forces one).

ALTER TABLE {db}.leads MODIFY TTL toDateTime(occurred_at) + toIntervalDay(730);
ALTER TABLE {db}.touchpoints MODIFY TTL toDateTime(occurred_at) + toIntervalDay(730);
ALTER TABLE {db}.conversions MODIFY TTL toDateTime(occurred_at) + toIntervalDay(730);
ALTER TABLE {db}.scored_leads MODIFY TTL toDateTime(occurred_at) + toIntervalDay(730);
ALTER TABLE {db}.training_examples MODIFY TTL toDateTime(labelled_at) + toIntervalDay(730);
ALTER TABLE {db}.rejected_events MODIFY TTL toDateTime(received_at) + toIntervalDay(90);
ALTER TABLE {db}.spend MODIFY TTL date + toIntervalDay(1825);

-- One row per erasure, without personal data: the subject only as a keyed hash.
CREATE TABLE IF NOT EXISTS {db}.erasures (
    erasure_id String,
    requested_at DateTime64(3, 'UTC'),
    subject_kind LowCardinality(String),   -- email, lead_id
    subject_hash FixedString(64),          -- HMAC of the normalised e-mail or the lead id
    leads UInt32,                          -- lead ids erased
    rows_deleted String,                   -- JSON: table -> rows deleted
    redis_keys_deleted UInt32,
    tombstones UInt32                      -- null-value messages produced on keyed topics
) ENGINE = MergeTree
ORDER BY (requested_at, erasure_id);
