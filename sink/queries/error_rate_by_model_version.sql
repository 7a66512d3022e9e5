-- Error rate by model version over time: per hour of the last 7 days and per model
-- version, how many jobs finished and which share of them failed.
-- Reads the jobs_hourly rollup, whose counts are distinct job ids: exact even if a job
-- row was ever written twice.
SELECT
    hour,
    model,
    model_version,
    sum(requests) AS jobs,
    sum(failures) AS failed,
    round(if(jobs = 0, 0, failed / jobs), 4) AS error_rate
FROM jobs_hourly
WHERE hour >= toStartOfHour(now() - INTERVAL 7 DAY)
GROUP BY hour, model, model_version
ORDER BY hour, model, model_version
