package schemas

import (
	"errors"
	"fmt"
	"time"
)

// SchemaFeedback identifies Feedback messages.
const SchemaFeedback = "studio.feedback/v1"

// SubjectFeedback carries Feedback messages (stream FEEDBACK).
const SubjectFeedback = "studio.feedback"

// Feedback is a user's thumbs up (+1) or down (-1) on one job's result, tagged with the
// model version that produced it so analysts can compare versions.
type Feedback struct {
	Schema string `json:"schema"`
	// ID is unique per feedback message (a ULID); consumers de-duplicate by it.
	ID           string    `json:"id"`
	JobID        string    `json:"job_id"`
	Tenant       string    `json:"tenant"`
	User         string    `json:"user"`
	Rating       int       `json:"rating"`
	Comment      string    `json:"comment,omitempty"`
	Model        string    `json:"model"`
	ModelVersion string    `json:"model_version"`
	Time         time.Time `json:"time"`
}

// Validate reports the first problem that makes f unusable.
func (f *Feedback) Validate() error {
	if f.Schema != SchemaFeedback {
		return fmt.Errorf("schema is %q, want %q", f.Schema, SchemaFeedback)
	}
	if f.ID == "" {
		return errors.New("missing id")
	}
	if f.JobID == "" {
		return errors.New("missing job_id")
	}
	if err := ValidToken(f.Tenant); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if f.Rating != 1 && f.Rating != -1 {
		return fmt.Errorf("rating is %d, want +1 or -1", f.Rating)
	}
	if f.Time.IsZero() {
		return errors.New("missing time")
	}
	return nil
}
