-- Every delivery attempt of a report (e-mail, webhook), for the record and so that
-- a scheduler restarted mid-period does not send a report twice: before sending,
-- the scheduler looks for a 'sent' row with the same report key and channel.
-- Targets are masked (SMTP host and a count of recipients, the webhook's host):
-- addresses are personal data and webhook URLs carry tokens.
CREATE TABLE IF NOT EXISTS {db}.report_deliveries (
    delivery_id String,                  -- report_key/channel/attempt time
    report_key String,                   -- e.g. weekly-2026-W06, monthly-2026-02
    period_kind LowCardinality(String),  -- weekly, monthly
    period_start Date,
    period_end Date,
    channel LowCardinality(String),      -- email, webhook
    target String,
    status LowCardinality(String),       -- sent, failed
    attempts UInt8,
    error String,
    artefacts Array(String),             -- file names delivered
    trigger LowCardinality(String),      -- schedule, catch-up, command
    recorded_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (report_key, channel, delivery_id)
