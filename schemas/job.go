package schemas

import (
	"fmt"
	"time"
)

// Task names a kind of work the service performs. Tasks are lower-case words joined by
// hyphens so they can be used as one NATS subject token.
type Task string

// The tasks the service knows.
const (
	TaskRemoveBackground Task = "remove-background"
	TaskUpscale          Task = "upscale"
	TaskStyleTransfer    Task = "style-transfer"
	TaskOCR              Task = "ocr"
	TaskGenerate         Task = "generate"
)

// Tier is a priority class. It is part of every pipeline subject, and each stage keeps
// one durable consumer per tier.
type Tier string

// The priority tiers, highest first.
const (
	TierPremium Tier = "premium"
	TierNormal  Tier = "normal"
	TierFree    Tier = "free"
)

// Tiers lists the tiers from highest to lowest priority.
var Tiers = []Tier{TierPremium, TierNormal, TierFree}

// Valid reports whether t is a known tier.
func (t Tier) Valid() bool {
	switch t {
	case TierPremium, TierNormal, TierFree:
		return true
	}
	return false
}

// Status is the lifecycle state of a job.
type Status string

// Job states. Succeeded, failed and cancelled are final.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Final reports whether no further transition can happen.
func (s Status) Final() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// Stage names a pipeline step.
type Stage string

// The stage names; processors.Stages declares the pipeline and its order.
const (
	StageIngest      Stage = "ingest"
	StagePreprocess  Stage = "preprocess"
	StageInference   Stage = "inference"
	StagePostprocess Stage = "postprocess"
	StageStore       Stage = "store"
)

// ObjectRef points at a blob in object storage. Pixels and tensors never ride on the
// bus: events carry these references instead (the claim-check pattern).
type ObjectRef struct {
	Key         string `json:"key" jsonschema:"description=object key inside the bucket"`
	Size        int64  `json:"size" jsonschema:"minimum=0"`
	SHA256      string `json:"sha256" jsonschema:"pattern=^[0-9a-f]{64}$"`
	ContentType string `json:"content_type,omitempty"`
	// Width and Height are set for images.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Shape and DType are set for raw tensors (row-major): "uint8" pixel planes, or
	// little-endian "float32".
	Shape []int64 `json:"shape,omitempty"`
	DType string  `json:"dtype,omitempty"`
	// Flags mark a result that is not what the job asked for: FlagUnsafe.
	Flags []string `json:"flags,omitempty" jsonschema:"description=what happened to this result: unsafe = the safety checker flagged the generated image and its pixels are black"`
	// Inline holds the bytes of a small scratch artifact that travels in the event
	// instead of the object store (a few KB at most, see processors/artifact.InlineMax);
	// Key then names it but nothing is stored there. Results never carry it.
	Inline []byte `json:"inline,omitempty" jsonschema:"description=base64 bytes of a small scratch artifact carried in the event instead of object storage"`
}

// FlagUnsafe marks a generated image (and a thumbnail made from it) that the model's
// safety checker flagged: its pixels are blacked out, so a client can say why rather
// than show a black square.
const FlagUnsafe = "unsafe"

// JobError explains why a job failed. Code is stable and meant for programs; Message is
// meant for people and says what to do.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Stage   Stage  `json:"stage,omitempty"`
}

func (e *JobError) Error() string {
	if e.Stage != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Stage, e.Message, e.Code)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// StageTiming records one stage's work on a job.
type StageTiming struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	DurationMS float64   `json:"duration_ms,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Worker     string    `json:"worker,omitempty"`
	BatchSize  int       `json:"batch_size,omitempty"`
}

// JobRecord is the state of one job, stored under its id in the KV bucket "jobs".
// Clients follow progress by watching this key.
type JobRecord struct {
	ID           string `json:"id"`
	Tenant       string `json:"tenant"`
	User         string `json:"user"`
	Tier         Tier   `json:"tier"`
	Task         Task   `json:"task"`
	Model        string `json:"model"`
	ModelVersion string `json:"model_version"`
	// FallbackFrom is the version the job asked for when its fallback ran instead.
	FallbackFrom  string         `json:"fallback_from,omitempty"`
	Params        map[string]any `json:"params,omitempty"`
	Status        Status         `json:"status"`
	Stage         Stage          `json:"stage"`
	Percent       int            `json:"percent"`
	QueuePosition int            `json:"queue_position,omitempty"`
	// Step and Steps count the denoising steps of a generate job while it runs.
	Step  int       `json:"step,omitempty"`
	Steps int       `json:"steps,omitempty"`
	Input ObjectRef `json:"input"`
	// Style is the stored style image of an arbitrary-style job, stored under the
	// job's input prefix.
	Style    *ObjectRef           `json:"style,omitempty"`
	Results  map[string]ObjectRef `json:"results,omitempty"`
	Error    *JobError            `json:"error,omitempty"`
	CacheHit bool                 `json:"cache_hit,omitempty"`
	TraceID  string               `json:"trace_id,omitempty"`
	// Batch is the batch the job belongs to (POST /v2/batches); such jobs travel on the
	// batch lane, the lowest tier's subjects.
	Batch string `json:"batch,omitempty"`
	// Chain holds the steps of a chained job, each with its outputs once done, and
	// ChainStep the index of the step running now; Task, Model and Params are the first
	// step's. Empty for a one-step job.
	Chain     []ChainStep `json:"chain,omitempty"`
	ChainStep int         `json:"chain_step,omitempty"`
	// Shadow marks a replay's run of a past request (see JobEvent.Shadow); ShadowOf is
	// the original job. Such a record is owned by the original's user (erasure finds it
	// by its tenant and user) but never shown to them.
	Shadow      bool                   `json:"shadow,omitempty"`
	ShadowOf    string                 `json:"shadow_of,omitempty"`
	SubmittedAt time.Time              `json:"submitted_at"`
	StartedAt   time.Time              `json:"started_at,omitzero"`
	FinishedAt  time.Time              `json:"finished_at,omitzero"`
	UpdatedAt   time.Time              `json:"updated_at"`
	Stages      map[Stage]*StageTiming `json:"stages,omitempty"`
}
