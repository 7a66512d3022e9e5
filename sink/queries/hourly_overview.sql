-- Hourly overview of the last 24 hours per task and model version: requests,
-- successes, failures, end-to-end latency percentiles and queue wait percentiles
-- (cache hits do not queue and are left out of the queue wait).
-- Reads the jobs_hourly rollup; its counts are distinct job ids. Its percentiles are
-- per row: combine rows by re-reading jobs, never by averaging percentiles.
-- (Columns are selected as they are: an alias equal to a column it is computed from,
-- like round(x, 1) AS x, is read differently by old and new ClickHouse analyzers.)
SELECT
    hour,
    task,
    model,
    model_version,
    requests,
    successes,
    failures,
    latency_p50_ms,
    latency_p95_ms,
    latency_p99_ms,
    queue_wait_p50_ms,
    queue_wait_p95_ms
FROM jobs_hourly
WHERE hour >= toStartOfHour(now() - INTERVAL 1 DAY)
ORDER BY hour, task, model, model_version
