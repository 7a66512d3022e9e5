-- Daily active users over the last 30 days: users who submitted a job that day, jobs
-- per user, the share of jobs that succeeded, and the average processing time (time
-- spent in the stages, cache hits excluded).
-- A user is a (tenant, user_id) pair. Reads the jobs_daily rollup, whose user and job
-- counts are distinct values: exact even if a job row was ever written twice.
SELECT
    day,
    active_users,
    jobs,
    jobs_per_user,
    success_rate,
    avg_processing_ms
FROM jobs_daily
WHERE day >= today() - 30
ORDER BY day
