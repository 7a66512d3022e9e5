-- Feedback score by model version over the last 30 days: thumbs up and down, the mean
-- rating (-1 to +1) and the share of positive ratings.
-- A user who rated the same job more than once counts once, with their latest rating;
-- FINAL collapses a feedback row that was ever written twice.
SELECT
    model,
    model_version,
    count() AS ratings,
    countIf(rating > 0) AS thumbs_up,
    countIf(rating < 0) AS thumbs_down,
    round(avg(rating), 4) AS score,
    round(thumbs_up / ratings, 4) AS positive_share
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
    WHERE event_time >= now() - INTERVAL 30 DAY
    GROUP BY model, model_version, job_id, tenant, user_id
)
GROUP BY model, model_version
ORDER BY model, model_version
