-- Rollups, maintained by materialized views at insert time.
--
-- A materialized view sees each inserted block once, so a job row inserted twice would
-- be counted twice by count(). The rollups therefore count distinct job ids and users
-- (uniqExact states): requests, successes, failures, active users, jobs per user and
-- success rate are exact even if a duplicate slips into jobs. Latency quantiles and
-- average processing time weigh such a rare duplicate twice, well inside the error of
-- the sampling quantile itself.
--
-- Analysts query the views jobs_hourly and jobs_daily, which merge the states into
-- plain numbers; the *_state tables hold the partial aggregates and are not meant to be
-- read directly.
CREATE TABLE IF NOT EXISTS jobs_hourly_state
(
    hour          DateTime('UTC'),
    task          String,
    model         String,
    model_version String,
    requests      AggregateFunction(uniqExact, String),
    successes     AggregateFunction(uniqExactIf, String, UInt8),
    failures      AggregateFunction(uniqExactIf, String, UInt8),
    latency_ms    AggregateFunction(quantiles(0.5, 0.95, 0.99), Float64),
    queue_wait_ms AggregateFunction(quantilesIf(0.5, 0.95, 0.99), Float64, UInt8)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, task, model, model_version);

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

CREATE VIEW IF NOT EXISTS jobs_hourly AS
SELECT
    hour,
    task,
    model,
    model_version,
    uniqExactMerge(requests) AS requests,
    uniqExactIfMerge(successes) AS successes,
    uniqExactIfMerge(failures) AS failures,
    quantilesMerge(0.5, 0.95, 0.99)(latency_ms) AS latency_q,
    latency_q[1] AS latency_p50_ms,
    latency_q[2] AS latency_p95_ms,
    latency_q[3] AS latency_p99_ms,
    quantilesIfMerge(0.5, 0.95, 0.99)(queue_wait_ms) AS queue_wait_q,
    queue_wait_q[1] AS queue_wait_p50_ms,
    queue_wait_q[2] AS queue_wait_p95_ms,
    queue_wait_q[3] AS queue_wait_p99_ms
FROM jobs_hourly_state
GROUP BY hour, task, model, model_version;

CREATE TABLE IF NOT EXISTS jobs_daily_state
(
    day           Date,
    tenant        String,
    requests      AggregateFunction(uniqExact, String),
    successes     AggregateFunction(uniqExactIf, String, UInt8),
    active_users  AggregateFunction(uniqExact, String, String),
    processing_ms AggregateFunction(avgIf, Float64, UInt8)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, tenant);

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

-- Across all tenants. A user is a (tenant, user_id) pair: user ids are per tenant.
CREATE VIEW IF NOT EXISTS jobs_daily AS
SELECT
    day,
    uniqExactMerge(active_users) AS active_users,
    uniqExactMerge(requests) AS jobs,
    if(active_users = 0, 0, jobs / active_users) AS jobs_per_user,
    uniqExactIfMerge(successes) AS successes,
    if(jobs = 0, 0, successes / jobs) AS success_rate,
    avgIfMerge(processing_ms) AS avg_processing_ms
FROM jobs_daily_state
GROUP BY day;
