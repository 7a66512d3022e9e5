-- Storage for analysts on a current ClickHouse: LowCardinality for enumerations,
-- compression codecs on long text, and TTLs that carry out the retention rules.
-- requires ClickHouse 21.8
--
-- 18.16 has none of this (LowCardinality only behind an experimental setting, no
-- codecs, no TTL), so on 18.16 this migration is skipped and not recorded; the next
-- `studio migrate` after an upgrade applies it. Every statement is an idempotent
-- ALTER: the column types, codecs and TTLs are simply set again on a rerun.
--
-- Retention: raw logs (stage_runs, http_requests, audit_log) are deleted 90 days after
-- their event; an audit record's IP address after 7 days (hot logs); jobs and feedback,
-- the business record, after 2 years, as the images are. Columns that are part of a
-- table's sorting or partition key keep their type here.
--
-- The rollups (jobs_hourly_state, jobs_daily_state) keep their rows: they hold no
-- personal data but user and job ids inside uniqExact states.
ALTER TABLE jobs
    MODIFY COLUMN tier LowCardinality(String),
    MODIFY COLUMN task LowCardinality(String),
    MODIFY COLUMN model LowCardinality(String),
    MODIFY COLUMN model_version LowCardinality(String),
    MODIFY COLUMN status LowCardinality(String),
    MODIFY COLUMN error_code LowCardinality(String),
    MODIFY COLUMN error_stage LowCardinality(String),
    MODIFY COLUMN input_type LowCardinality(String),
    MODIFY COLUMN error_message String CODEC(ZSTD(3)),
    MODIFY COLUMN started_at DateTime('UTC') CODEC(Delta, ZSTD(1)),
    MODIFY COLUMN finished_at DateTime('UTC') CODEC(Delta, ZSTD(1));

ALTER TABLE jobs MODIFY TTL submitted_at + INTERVAL 2 YEAR;

ALTER TABLE stage_runs
    MODIFY COLUMN tier LowCardinality(String),
    MODIFY COLUMN task LowCardinality(String),
    MODIFY COLUMN model LowCardinality(String),
    MODIFY COLUMN model_version LowCardinality(String),
    MODIFY COLUMN stage LowCardinality(String),
    MODIFY COLUMN worker LowCardinality(String),
    MODIFY COLUMN outcome LowCardinality(String),
    MODIFY COLUMN error String CODEC(ZSTD(3));

ALTER TABLE stage_runs MODIFY TTL started_at + INTERVAL 90 DAY;

ALTER TABLE http_requests
    MODIFY COLUMN method LowCardinality(String),
    MODIFY COLUMN route LowCardinality(String);

ALTER TABLE http_requests MODIFY TTL event_time + INTERVAL 90 DAY;

ALTER TABLE audit_log
    MODIFY COLUMN action LowCardinality(String),
    MODIFY COLUMN result LowCardinality(String),
    MODIFY COLUMN ip String TTL event_time + INTERVAL 7 DAY;

ALTER TABLE audit_log MODIFY TTL event_time + INTERVAL 90 DAY;

ALTER TABLE feedback
    MODIFY COLUMN model LowCardinality(String),
    MODIFY COLUMN model_version LowCardinality(String),
    MODIFY COLUMN comment String CODEC(ZSTD(3));

ALTER TABLE feedback MODIFY TTL event_time + INTERVAL 2 YEAR;
