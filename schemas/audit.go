package schemas

import (
	"errors"
	"fmt"
	"time"
)

// Schema identifiers of the audit trail.
const (
	SchemaAudit   = "studio.audit/v1"
	SchemaErasure = "studio.erasure/v1"
)

// SubjectErasure carries ErasureRequest messages. It lies inside the AUDIT stream, so
// the request itself is part of the audit trail.
const SubjectErasure = "studio.audit.erasure"

// ActionErasure is the audit action of an applied erasure request.
const ActionErasure = "erasure"

// AuditSubject is where an audit event is published: studio.audit.<action>. The action
// must be one subject token (see ValidToken), e.g. "job-submit" or "api-key-create".
func AuditSubject(action string) string { return "studio.audit." + action }

// AuditEvent records who did what to which resource, and whether it was allowed. The
// ClickHouse sink keeps every event in the table audit_log.
type AuditEvent struct {
	Schema string `json:"schema"`
	// ID is unique per event (a ULID); consumers de-duplicate by it.
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Actor is the user, API key or service that acted.
	Actor  string `json:"actor"`
	Tenant string `json:"tenant"`
	// Action is one subject token: "job-submit", "job-cancel", "login", ...
	Action string `json:"action"`
	// Resource names what was acted on: "job/01J...", "api-key/ab12".
	Resource string `json:"resource,omitempty"`
	IP       string `json:"ip,omitempty"`
	// Result is "allowed", "denied" or "error".
	Result string `json:"result"`
	// Reason says why a decision was "denied" or "error": the problem code the caller
	// got ("rate_limited", "forbidden", "invalid_params", ...).
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
}

// Validate reports the first problem that makes e unusable as an audit record.
func (e *AuditEvent) Validate() error {
	if e.Schema != SchemaAudit {
		return fmt.Errorf("schema is %q, want %q", e.Schema, SchemaAudit)
	}
	if e.ID == "" {
		return errors.New("missing id")
	}
	if e.Time.IsZero() {
		return errors.New("missing time")
	}
	if err := ValidToken(e.Action); err != nil {
		return fmt.Errorf("action: %w", err)
	}
	if e.Actor == "" {
		return errors.New("missing actor")
	}
	if e.Result == "" {
		return errors.New("missing result")
	}
	return nil
}

// ErasureRequest asks for every analytics row of one user of one tenant to be deleted
// (a GDPR erasure). It is published on SubjectErasure; the ClickHouse sink deletes the
// user's rows that are older than RequestedAt, drops such rows that arrive later, and
// keeps the request itself in audit_log.
type ErasureRequest struct {
	Schema      string    `json:"schema"`
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	User        string    `json:"user"`
	RequestedAt time.Time `json:"requested_at"`
	// RequestedBy is who asked (an operator or the user); recorded in the audit trail.
	RequestedBy string `json:"requested_by,omitempty"`
}

// Validate reports the first problem that makes r unusable.
func (r *ErasureRequest) Validate() error {
	if r.Schema != SchemaErasure {
		return fmt.Errorf("schema is %q, want %q", r.Schema, SchemaErasure)
	}
	if r.ID == "" {
		return errors.New("missing id")
	}
	if err := ValidToken(r.Tenant); err != nil {
		return fmt.Errorf("tenant: %w", err)
	}
	if r.User == "" {
		return errors.New("missing user")
	}
	if r.RequestedAt.IsZero() {
		return errors.New("missing requested_at")
	}
	return nil
}
