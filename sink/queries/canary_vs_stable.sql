-- Canary vs stable over the last 24 hours. For each model, the version that served the
-- most jobs is "stable" and every other version is a "canary"; each version's error
-- rate, latency of succeeded jobs and feedback score are shown side by side; a tie in
-- jobs goes to the later version name. FINAL collapses rows that were ever written twice.
-- (One JOIN per SELECT and ARRAY JOIN instead of window functions keep this runnable on
-- ClickHouse 18.16; the aliased subqueries and ALL LEFT JOIN, whose right side has one row
-- per model version, read the same on 18.16 and on a current server.)
SELECT
    model,
    model_version,
    role,
    jobs,
    failed,
    error_rate,
    p50_ms,
    p95_ms,
    ratings,
    score
FROM
(
    SELECT
        model,
        model_version,
        if(model_version = stable_version, 'stable', 'canary') AS role,
        jobs,
        failed,
        round(failed / jobs, 4) AS error_rate,
        p50_ms,
        p95_ms
    FROM
    (
        SELECT
            model,
            argMax(model_version, (jobs, model_version)) AS stable_version,
            groupArray(model_version) AS versions,
            groupArray(jobs) AS job_counts,
            groupArray(failed) AS failed_counts,
            groupArray(p50_ms) AS p50s,
            groupArray(p95_ms) AS p95s
        FROM
        (
            SELECT
                model,
                model_version,
                count() AS jobs,
                countIf(status = 'failed') AS failed,
                round(quantileIf(0.5)(total_ms, status = 'succeeded'), 1) AS p50_ms,
                round(quantileIf(0.95)(total_ms, status = 'succeeded'), 1) AS p95_ms
            FROM jobs FINAL
            WHERE submitted_at >= now() - INTERVAL 1 DAY
            GROUP BY model, model_version
        )
        GROUP BY model
    )
    ARRAY JOIN
        versions AS model_version,
        job_counts AS jobs,
        failed_counts AS failed,
        p50s AS p50_ms,
        p95s AS p95_ms
) AS versions
ALL LEFT JOIN
(
    -- Feedback counted as in feedback_by_model_version: a user's latest rating per job.
    SELECT
        model,
        model_version,
        count() AS ratings,
        round(avg(rating), 4) AS score
    FROM
    (
        SELECT
            model,
            model_version,
            job_id,
            tenant,
            user_id,
            argMax(rating, event_time) AS rating
        FROM feedback FINAL
        WHERE event_time >= now() - INTERVAL 1 DAY
        GROUP BY model, model_version, job_id, tenant, user_id
    )
    GROUP BY model, model_version
) AS feedback_scores USING (model, model_version)
ORDER BY model, role DESC, model_version
