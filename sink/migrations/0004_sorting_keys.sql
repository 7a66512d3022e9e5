-- Sorting keys for analysts: every table with events is ordered by the day of its event,
-- then the tenant, then its id, so a query that filters on time (all of the cookbook)
-- reads only the days it asks for, and one that also filters on a tenant only that
-- tenant's granules. The id stays last in the key, so a row written twice still
-- collapses into one: its day and tenant are part of the event and never change.
-- ReplacingMergeTree(inserted_at) names the version column: of two copies, the one
-- written last is kept.
--
-- ClickHouse cannot change a table's sorting key in place, so each table is rebuilt:
-- a new table with the same columns (CREATE TABLE … AS keeps the column types and
-- codecs of 0003 where it ran), a copy of the rows, an atomic rename, and the old
-- table dropped. The key uses only columns that 0003 leaves alone, so 0003 can still
-- run after this one on a server upgraded from 18.16. Table TTLs live in the engine
-- clause and are set again by 0005 where the server has them. The materialized views
-- of 0002 are dropped first and created again last, so no insert reaches a half-built
-- table. Every step can be rerun after a crash: leftovers of an earlier try are
-- dropped first. Run it while no sink writes (the sink migrates before it consumes).
DROP TABLE IF EXISTS jobs_hourly_mv;
DROP TABLE IF EXISTS jobs_daily_mv;

DROP TABLE IF EXISTS jobs_sorted;
CREATE TABLE jobs_sorted AS jobs
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(submitted_at)
ORDER BY (toDate(submitted_at), tenant, job_id);
INSERT INTO jobs_sorted SELECT * FROM jobs;
DROP TABLE IF EXISTS jobs_unsorted;
RENAME TABLE jobs TO jobs_unsorted, jobs_sorted TO jobs;
DROP TABLE jobs_unsorted;

DROP TABLE IF EXISTS stage_runs_sorted;
CREATE TABLE stage_runs_sorted AS stage_runs
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(started_at)
ORDER BY (toDate(started_at), tenant, run_id);
INSERT INTO stage_runs_sorted SELECT * FROM stage_runs;
DROP TABLE IF EXISTS stage_runs_unsorted;
RENAME TABLE stage_runs TO stage_runs_unsorted, stage_runs_sorted TO stage_runs;
DROP TABLE stage_runs_unsorted;

DROP TABLE IF EXISTS http_requests_sorted;
CREATE TABLE http_requests_sorted AS http_requests
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (toDate(event_time), tenant, id);
INSERT INTO http_requests_sorted SELECT * FROM http_requests;
DROP TABLE IF EXISTS http_requests_unsorted;
RENAME TABLE http_requests TO http_requests_unsorted, http_requests_sorted TO http_requests;
DROP TABLE http_requests_unsorted;

DROP TABLE IF EXISTS audit_log_sorted;
CREATE TABLE audit_log_sorted AS audit_log
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (toDate(event_time), tenant, id);
INSERT INTO audit_log_sorted SELECT * FROM audit_log;
DROP TABLE IF EXISTS audit_log_unsorted;
RENAME TABLE audit_log TO audit_log_unsorted, audit_log_sorted TO audit_log;
DROP TABLE audit_log_unsorted;

DROP TABLE IF EXISTS feedback_sorted;
CREATE TABLE feedback_sorted AS feedback
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (toDate(event_time), tenant, id);
INSERT INTO feedback_sorted SELECT * FROM feedback;
DROP TABLE IF EXISTS feedback_unsorted;
RENAME TABLE feedback TO feedback_unsorted, feedback_sorted TO feedback;
DROP TABLE feedback_unsorted;

CREATE MATERIALIZED VIEW IF NOT EXISTS jobs_hourly_mv TO jobs_hourly_state AS
SELECT
    toStartOfHour(submitted_at) AS hour,
    task,
    model,
    model_version,
    uniqExactState(job_id) AS requests,
    uniqExactIfState(job_id, toUInt8(status = 'succeeded')) AS successes,
    uniqExactIfState(job_id, toUInt8(status = 'failed')) AS failures,
    quantilesState(0.5, 0.95, 0.99)(total_ms) AS latency_ms,
    quantilesIfState(0.5, 0.95, 0.99)(queue_wait_ms, toUInt8(cache_hit = 0)) AS queue_wait_ms
FROM jobs
GROUP BY hour, task, model, model_version;

CREATE MATERIALIZED VIEW IF NOT EXISTS jobs_daily_mv TO jobs_daily_state AS
SELECT
    toDate(submitted_at) AS day,
    tenant,
    uniqExactState(job_id) AS requests,
    uniqExactIfState(job_id, toUInt8(status = 'succeeded')) AS successes,
    uniqExactState(tenant, user_id) AS active_users,
    avgIfState(processing_ms, toUInt8(cache_hit = 0)) AS processing_ms
FROM jobs
GROUP BY day, tenant;
