-- The sink's tables: one row per job, stage attempt, HTTP request, audit event,
-- feedback message and erasure request.
--
-- Duplicates: every table is a ReplacingMergeTree whose sorting key is a deterministic
-- id (the job id; job:stage:attempt:outcome for a stage run; the event id otherwise), so
-- the same event written twice collapses to one row when parts merge. The sink also
-- looks the ids of each batch up before inserting and skips those already stored, so a
-- redelivery after a crash writes nothing; a duplicate can only appear when two sink
-- replicas insert the same event at the same moment. Queries that must be exact even
-- then read with FINAL (the analyst cookbook in sink/queries does).
--
-- Times are DateTime('UTC') (whole seconds: DateTime64 does not exist on 18.16);
-- durations are Float64 milliseconds and keep sub-second precision. A time that is not
-- known is 1970-01-01 00:00:00.
CREATE TABLE IF NOT EXISTS jobs
(
    job_id         String,
    tenant         String,
    user_id        String,
    tier           String,
    task           String,
    model          String,
    model_version  String,
    status         String,
    error_code     String,
    error_message  String,
    error_stage    String,
    cache_hit      UInt8,
    input_bytes    UInt64,
    input_type     String,
    input_width    UInt32,
    input_height   UInt32,
    outputs        UInt16,
    output_bytes   UInt64,
    output_width   UInt32,
    output_height  UInt32,
    submitted_at   DateTime('UTC'),
    started_at     DateTime('UTC'),
    finished_at    DateTime('UTC'),
    total_ms       Float64,
    queue_wait_ms  Float64,
    processing_ms  Float64,
    preprocess_ms  Float64,
    inference_ms   Float64,
    postprocess_ms Float64,
    store_ms       Float64,
    trace_id       String,
    inserted_at    DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(submitted_at)
ORDER BY job_id;

CREATE TABLE IF NOT EXISTS stage_runs
(
    run_id        String,
    job_id        String,
    tenant        String,
    user_id       String,
    tier          String,
    task          String,
    model         String,
    model_version String,
    stage         String,
    worker        String,
    attempt       UInt16,
    batch_size    UInt16,
    outcome       String,
    error         String,
    started_at    DateTime('UTC'),
    duration_ms   Float64,
    queue_wait_ms Float64,
    trace_id      String,
    inserted_at   DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(started_at)
ORDER BY run_id;

CREATE TABLE IF NOT EXISTS http_requests
(
    id             String,
    event_time     DateTime('UTC'),
    method         String,
    route          String,
    status         UInt16,
    duration_ms    Float64,
    tenant         String,
    user_id        String,
    request_bytes  UInt64,
    response_bytes UInt64,
    sample_rate    Float64,
    weight         Float64,
    request_id     String,
    trace_id       String,
    inserted_at    DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY id;

CREATE TABLE IF NOT EXISTS audit_log
(
    id          String,
    event_time  DateTime('UTC'),
    actor       String,
    tenant      String,
    action      String,
    resource    String,
    ip          String,
    result      String,
    request_id  String,
    trace_id    String,
    inserted_at DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY id;

CREATE TABLE IF NOT EXISTS feedback
(
    id            String,
    job_id        String,
    tenant        String,
    user_id       String,
    rating        Int8,
    comment       String,
    model         String,
    model_version String,
    event_time    DateTime('UTC'),
    inserted_at   DateTime('UTC') DEFAULT now()
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_time)
ORDER BY id;

-- Applied erasure requests. The sink reads this table at start and drops rows of an
-- erased user that arrive late (event time at or before requested_at).
CREATE TABLE IF NOT EXISTS erasures
(
    id           String,
    tenant       String,
    user_id      String,
    requested_at DateTime('UTC'),
    requested_by String,
    applied_at   DateTime('UTC')
)
ENGINE = ReplacingMergeTree()
ORDER BY id;
