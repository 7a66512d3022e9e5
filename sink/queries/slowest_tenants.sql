-- Slowest tenants: end-to-end latency (submitted to finished) of the jobs that ran and
-- succeeded in the last 7 days, slowest p95 first, with the part spent queueing.
-- FINAL collapses a job row that was ever written twice.
SELECT
    tenant,
    count() AS jobs,
    round(quantile(0.5)(total_ms), 1) AS p50_ms,
    round(quantile(0.95)(total_ms), 1) AS p95_ms,
    round(avg(queue_wait_ms), 1) AS avg_queue_wait_ms
FROM jobs FINAL
WHERE submitted_at >= now() - INTERVAL 7 DAY
  AND status = 'succeeded'
  AND cache_hit = 0
GROUP BY tenant
ORDER BY p95_ms DESC, tenant
LIMIT 20
