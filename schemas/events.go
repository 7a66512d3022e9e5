package schemas

import "time"

// Schema identifiers carried in every event's "schema" field.
const (
	SchemaJobRequested     = "studio.job.requested/v1"
	SchemaJobPreprocessed  = "studio.job.preprocessed/v1"
	SchemaJobInferred      = "studio.job.inferred/v1"
	SchemaJobPostprocessed = "studio.job.postprocessed/v1"
	SchemaJobResult        = "studio.job.result/v1"
	SchemaStageRun         = "studio.telemetry.stage_run/v1"
)

// JobEvent is the message that moves a job from one stage to the next. Each stage reads
// the event, adds what it produced (Artifacts, timing stamps) and publishes it on the
// next subject with a new Schema value. Events stay a few KB: Artifacts are references.
type JobEvent struct {
	Schema       string         `json:"schema"`
	JobID        string         `json:"job_id"`
	Tenant       string         `json:"tenant"`
	User         string         `json:"user"`
	Tier         Tier           `json:"tier"`
	Task         Task           `json:"task"`
	Model        string         `json:"model"`
	ModelVersion string         `json:"model_version"`
	Params       map[string]any `json:"params,omitempty"`
	Input        ObjectRef      `json:"input"`
	// Style is the style image of an arbitrary-style job (JobRecord.Style).
	Style *ObjectRef `json:"style,omitempty"`
	// Artifacts are the named objects produced so far: "tensor", "mask", "cutout", ...
	Artifacts map[string]ObjectRef `json:"artifacts,omitempty"`
	// Unsafe lists the generated images (0-based) that the safety checker flagged and
	// inference blacked out; postprocess marks their results FlagUnsafe.
	Unsafe []int `json:"unsafe,omitempty"`
	// Image describes the decoded input after EXIF orientation.
	Image       *ImageInfo `json:"image,omitempty"`
	TraceParent string     `json:"traceparent,omitempty"`
	SubmittedAt time.Time  `json:"submitted_at"`
	// Stamps records when each stage finished, keyed by stage name.
	Stamps map[Stage]time.Time `json:"stamps,omitempty"`
	// Chain holds every step of a chained job (JobRequest.Steps) and ChainStep the
	// index of the step this event belongs to; Task, Model, ModelVersion, Params and
	// Input are that step's. Empty for a one-step job.
	Chain     []ChainStep `json:"chain,omitempty"`
	ChainStep int         `json:"chain_step,omitempty"`
	// Shadow marks a replay's run of a past request (studio replay) on the lowest
	// tier's lane: it publishes no result event and no stage telemetry, and ingest
	// hides it from its user; replay.ReadWindow never selects it.
	Shadow bool `json:"shadow,omitempty"`
}

// ImageInfo describes a decoded input image.
type ImageInfo struct {
	Format      string `json:"format"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Orientation int    `json:"orientation,omitempty"`
	// ColorProfile is the description of the embedded ICC profile the input
	// was converted to sRGB from ("Adobe RGB (1998)"); empty for untagged input.
	ColorProfile string `json:"color_profile,omitempty"`
}

// ResultEvent is published on studio.results.<tenant>.<task> when a job reaches a final
// state. Anyone allowed to read the subject may subscribe.
type ResultEvent struct {
	Schema       string `json:"schema"`
	JobID        string `json:"job_id"`
	Tenant       string `json:"tenant"`
	User         string `json:"user"`
	Task         Task   `json:"task"`
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	// FallbackFrom is the version the job asked for when its fallback ran instead.
	FallbackFrom string               `json:"fallback_from,omitempty"`
	Tier         Tier                 `json:"tier"`
	Status       Status               `json:"status"`
	Error        *JobError            `json:"error,omitempty"`
	Input        ObjectRef            `json:"input"`
	Results      map[string]ObjectRef `json:"results,omitempty"`
	CacheHit     bool                 `json:"cache_hit,omitempty"`
	TraceParent  string               `json:"traceparent,omitempty"`
	SubmittedAt  time.Time            `json:"submitted_at"`
	FinishedAt   time.Time            `json:"finished_at"`
	// StartedAt is when the first stage picked the job up; StartedAt - SubmittedAt is
	// the queue wait.
	StartedAt time.Time `json:"started_at,omitzero"`
	// DurationsMS holds each stage's processing time in milliseconds.
	DurationsMS map[Stage]float64 `json:"durations_ms,omitempty"`
	// Chain lists the steps of a chained job with each step's outputs (also in Results
	// under their step names).
	Chain []ChainStep `json:"chain,omitempty"`
}

// StageRun is telemetry for one attempt of one stage on one job, published on
// studio.telemetry.<stage>.
type StageRun struct {
	Schema       string    `json:"schema"`
	JobID        string    `json:"job_id"`
	Tenant       string    `json:"tenant"`
	User         string    `json:"user"`
	Tier         Tier      `json:"tier"`
	Task         Task      `json:"task"`
	Model        string    `json:"model"`
	ModelVersion string    `json:"model_version"`
	Stage        Stage     `json:"stage"`
	Worker       string    `json:"worker"`
	Attempt      int       `json:"attempt"`
	BatchSize    int       `json:"batch_size"`
	Outcome      string    `json:"outcome"` // ok, retry, failed, skipped
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	DurationMS   float64   `json:"duration_ms"`
	QueueWaitMS  float64   `json:"queue_wait_ms"`
	TraceParent  string    `json:"traceparent,omitempty"`
}

// ResultFromRecord builds the result event of a job in a final state.
func ResultFromRecord(rec *JobRecord, traceparent string) ResultEvent {
	res := ResultEvent{
		Schema: SchemaJobResult, JobID: rec.ID, Tenant: rec.Tenant, User: rec.User,
		Tier: rec.Tier, Task: rec.Task, Model: rec.Model, ModelVersion: rec.ModelVersion, FallbackFrom: rec.FallbackFrom, Status: rec.Status,
		Error: rec.Error, Input: rec.Input, Results: rec.Results, CacheHit: rec.CacheHit, TraceParent: traceparent,
		SubmittedAt: rec.SubmittedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt, DurationsMS: map[Stage]float64{},
		Chain: rec.Chain,
	}
	for s, t := range rec.Stages {
		res.DurationsMS[s] = t.DurationMS
	}
	return res
}
