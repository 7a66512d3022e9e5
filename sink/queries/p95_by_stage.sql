-- Stage latency: p50, p95 and p99 of successful runs of each pipeline stage over the
-- last 24 hours, with how often the stage retried or failed for good.
-- FINAL collapses a stage run that was ever written twice.
SELECT
    stage,
    countIf(outcome = 'ok') AS runs,
    countIf(outcome = 'retry') AS retries,
    countIf(outcome = 'failed') AS failures,
    round(quantileIf(0.5)(duration_ms, outcome = 'ok'), 3) AS p50_ms,
    round(quantileIf(0.95)(duration_ms, outcome = 'ok'), 3) AS p95_ms,
    round(quantileIf(0.99)(duration_ms, outcome = 'ok'), 3) AS p99_ms,
    round(avg(queue_wait_ms), 3) AS avg_queue_wait_ms
FROM stage_runs FINAL
WHERE started_at >= now() - INTERVAL 1 DAY
GROUP BY stage
ORDER BY indexOf(['preprocess', 'inference', 'postprocess', 'store'], stage), stage
