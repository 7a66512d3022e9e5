package schemas

import (
	"errors"
	"time"
)

// SchemaReplayResult identifies a ReplayResult.
const SchemaReplayResult = "studio.replay.result/v1"

// SubjectReplayResults carries ReplayResult messages. It lies inside the TELEMETRY
// stream, which the sink reads into the replay_results table.
const SubjectReplayResults = "studio.telemetry.replay"

// Replay outcomes.
const (
	ReplayCompared = "compared" // the shadow run succeeded and its output was compared
	ReplayFailed   = "failed"   // the shadow run failed, or its output could not be compared
)

// ReplayResult is one past request replayed on the shadow lane (`studio replay`): the
// original job and its shadow run, and how the shadow's output compares. A metric is
// NaN-free: one that does not apply to the task is left out.
type ReplayResult struct {
	Schema      string `json:"schema"`
	ReplayID    string `json:"replay_id"`
	JobID       string `json:"job_id"`
	ShadowJobID string `json:"shadow_job_id,omitempty"`
	Tenant      string `json:"tenant"`
	User        string `json:"user"`
	Task        Task   `json:"task"`
	Model       string `json:"model"`
	// OriginalVersion ran the original job; ShadowVersion the replay.
	OriginalVersion string `json:"original_version"`
	ShadowVersion   string `json:"shadow_version"`
	// Outcome is ReplayCompared or ReplayFailed (Error says why).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Output names the result that was compared.
	Output    string   `json:"output,omitempty"`
	IoU       *float64 `json:"iou,omitempty"`
	PSNR      *float64 `json:"psnr,omitempty"`
	SSIM      *float64 `json:"ssim,omitempty"`
	TextEqual *bool    `json:"text_equal,omitempty"`
	CER       *float64 `json:"cer,omitempty"`
	// OriginalMS and ShadowMS are each run's processing time (first stage start to
	// the end), so queueing on the shadow lane does not count against it.
	OriginalMS  float64   `json:"original_ms"`
	ShadowMS    float64   `json:"shadow_ms"`
	SubmittedAt time.Time `json:"submitted_at"`
	ReplayedAt  time.Time `json:"replayed_at"`
}

// Validate reports the first problem that makes r unusable.
func (r *ReplayResult) Validate() error {
	switch {
	case r.Schema != SchemaReplayResult:
		return errors.New("replay result: schema must be " + SchemaReplayResult)
	case r.ReplayID == "" || r.JobID == "":
		return errors.New("replay result: replay_id and job_id are required")
	case ValidToken(r.Tenant) != nil:
		return errors.New("replay result: tenant is not a valid id")
	case r.Outcome != ReplayCompared && r.Outcome != ReplayFailed:
		return errors.New("replay result: outcome must be compared or failed")
	case r.ReplayedAt.IsZero():
		return errors.New("replay result: replayed_at is required")
	}
	return nil
}
