-- HTTP routes over the last 24 hours: estimated requests (each sampled record stands
-- for 1/sample_rate requests), the share answered with a 5xx or a 4xx, and latency.
-- FINAL collapses a record that was ever written twice.
SELECT
    route,
    round(sum(weight)) AS requests,
    round(sumIf(weight, status >= 500) / sum(weight), 4) AS server_error_rate,
    round(sumIf(weight, status >= 400 AND status < 500) / sum(weight), 4) AS client_error_rate,
    round(quantile(0.5)(duration_ms), 3) AS p50_ms,
    round(quantile(0.95)(duration_ms), 3) AS p95_ms
FROM http_requests FINAL
WHERE event_time >= now() - INTERVAL 1 DAY
GROUP BY route
ORDER BY requests DESC, route
