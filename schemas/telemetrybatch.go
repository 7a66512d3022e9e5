package schemas

import (
	"errors"
	"fmt"
)

// Batched telemetry: a producer gathers rows (stage runs, HTTP requests, audit events)
// and publishes many in one message, so a job costs the TELEMETRY stream a fraction of
// a message instead of one per stage run. Each row is the single-row event unchanged
// (its own schema field and id), so consumers keep de-duplicating by row id; the
// batch's message id (producer and sequence) makes a retried publish a duplicate the
// stream drops. Consumers read both forms: single-row events still arrive from
// producers of older versions during a rolling upgrade.
const (
	// SchemaTelemetryBatch identifies TelemetryBatch.
	SchemaTelemetryBatch = "studio.telemetry.batch/v1"
	// SubjectTelemetryBatch carries TelemetryBatch messages (stream TELEMETRY).
	SubjectTelemetryBatch = "studio.telemetry.batch"
	// SchemaAuditBatch identifies AuditBatch.
	SchemaAuditBatch = "studio.audit.batch/v1"
	// SubjectAuditBatch carries AuditBatch messages (stream AUDIT); "batch" is never an
	// audit action.
	SubjectAuditBatch = "studio.audit.batch"
)

// TelemetryBatch is many telemetry rows of one producer in one message on
// SubjectTelemetryBatch.
type TelemetryBatch struct {
	Schema string `json:"schema"`
	// Producer names the publishing process instance: its worker id and a nonce drawn
	// at start, so a restarted process never reuses a message id.
	Producer string `json:"producer"`
	// Seq numbers the producer's batches from 1; Producer and Seq form the message id.
	Seq uint64 `json:"seq"`
	// StageRuns are studio.telemetry.stage_run/v1 events, each as published alone.
	StageRuns []StageRun `json:"stage_runs,omitempty"`
	// HTTPRequests are studio.telemetry.http_request/v1 events.
	HTTPRequests []HTTPRequest `json:"http_requests,omitempty"`
}

// AuditBatch is many audit events of one producer in one message on
// SubjectAuditBatch. The producer publishes it before telling the callers of the events
// in it that they are stored.
type AuditBatch struct {
	Schema   string       `json:"schema"`
	Producer string       `json:"producer"`
	Seq      uint64       `json:"seq"`
	Events   []AuditEvent `json:"events"`
}

// BatchMsgID is the message id of a producer's batch: "<prefix>:<producer>:<seq>".
func BatchMsgID(prefix, producer string, seq uint64) string {
	return fmt.Sprintf("%s:%s:%d", prefix, producer, seq)
}

// Validate reports the first problem that makes b unusable; rows are checked by their
// consumers, one by one.
func (b *TelemetryBatch) Validate() error {
	if b.Schema != SchemaTelemetryBatch {
		return fmt.Errorf("schema is %q, want %q", b.Schema, SchemaTelemetryBatch)
	}
	if b.Producer == "" || b.Seq == 0 {
		return errors.New("missing producer or seq")
	}
	return nil
}

// Validate reports the first problem that makes b unusable.
func (b *AuditBatch) Validate() error {
	if b.Schema != SchemaAuditBatch {
		return fmt.Errorf("schema is %q, want %q", b.Schema, SchemaAuditBatch)
	}
	if b.Producer == "" || b.Seq == 0 {
		return errors.New("missing producer or seq")
	}
	return nil
}
