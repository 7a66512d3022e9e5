package schemas

import (
	"errors"
	"fmt"
	"time"
)

// SchemaHTTPRequest identifies HTTPRequest telemetry.
const SchemaHTTPRequest = "studio.telemetry.http_request/v1"

// SubjectHTTPTelemetry carries HTTPRequest telemetry (stream TELEMETRY).
const SubjectHTTPTelemetry = "studio.telemetry.http"

// HTTPRequest is telemetry for one HTTP request served by ingest. Ingest may sample:
// SampleRate is the fraction of requests reported (0 < rate <= 1), so each record
// stands for 1/SampleRate requests.
type HTTPRequest struct {
	Schema string `json:"schema"`
	// ID is unique per request (a ULID); consumers de-duplicate by it.
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	// Route is the matched route pattern ("POST /v1/jobs"), never the raw path, so ids
	// in paths do not explode cardinality.
	Route      string  `json:"route"`
	Status     int     `json:"status"`
	DurationMS float64 `json:"duration_ms"`
	Tenant     string  `json:"tenant,omitempty"`
	User       string  `json:"user,omitempty"`
	// RequestBytes and ResponseBytes are body sizes.
	RequestBytes  int64   `json:"request_bytes,omitempty"`
	ResponseBytes int64   `json:"response_bytes,omitempty"`
	SampleRate    float64 `json:"sample_rate"`
	RequestID     string  `json:"request_id,omitempty"`
	TraceID       string  `json:"trace_id,omitempty"`
}

// Validate reports the first problem that makes r unusable.
func (r *HTTPRequest) Validate() error {
	if r.Schema != SchemaHTTPRequest {
		return fmt.Errorf("schema is %q, want %q", r.Schema, SchemaHTTPRequest)
	}
	if r.ID == "" {
		return errors.New("missing id")
	}
	if r.Time.IsZero() {
		return errors.New("missing time")
	}
	if r.Route == "" {
		return errors.New("missing route")
	}
	if r.Status < 100 || r.Status > 599 {
		return fmt.Errorf("status %d is not an HTTP status", r.Status)
	}
	if r.DurationMS < 0 {
		return fmt.Errorf("negative duration_ms %v", r.DurationMS)
	}
	if !(r.SampleRate > 0 && r.SampleRate <= 1) {
		return fmt.Errorf("sample_rate %v is not in (0, 1]", r.SampleRate)
	}
	return nil
}
