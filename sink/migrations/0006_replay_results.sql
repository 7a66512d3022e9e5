-- Shadow replays (`studio replay`): one row per past request replayed through another
-- model version, with how its output compares with the original's. The id is
-- "<replay id>:<job id>", last in the sorting key, so a row written twice collapses.
-- A metric that does not apply to the task is nan (text_equal 255): aggregate with
-- avgIf(x, NOT isNaN(x)). user_id and submitted_at (the original request's time)
-- select a user's rows for erasure. Every engine the sink supports takes this; the
-- retention (90 days after the replay) is 0007, where the server has table TTLs.
CREATE TABLE IF NOT EXISTS replay_results
(
    id               String,
    replay_id        String,
    job_id           String,
    shadow_job_id    String,
    tenant           String,
    user_id          String,
    task             String,
    model            String,
    original_version String,
    shadow_version   String,
    outcome          String,
    error            String,
    output           String,
    iou              Float64,
    psnr             Float64,
    ssim             Float64,
    text_equal       UInt8,
    cer              Float64,
    original_ms      Float64,
    shadow_ms        Float64,
    submitted_at     DateTime('UTC'),
    replayed_at      DateTime('UTC'),
    inserted_at      DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(replayed_at)
ORDER BY (toDate(replayed_at), tenant, id);
