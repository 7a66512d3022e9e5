package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// AuditLog publishes audit events on studio.audit.<action> (stream AUDIT, kept 30 days,
// copied to ClickHouse by the sink). Each publish waits for the stream's
// acknowledgement, so a nil error means the event is stored; the event id is the
// message id, so a retried publish is stored once. Safe for concurrent use.
type AuditLog struct {
	pub streams.Publisher
	now func() time.Time
}

var _ Auditor = (*AuditLog)(nil)

// NewAuditLog returns an audit log publishing through pub (JSPublisher in production).
func NewAuditLog(pub streams.Publisher) *AuditLog {
	return &AuditLog{pub: pub, now: time.Now}
}

// Audit fills in Schema, ID and Time when empty, validates and publishes e.
func (a *AuditLog) Audit(ctx context.Context, e schemas.AuditEvent) error {
	if e.Schema == "" {
		e.Schema = schemas.SchemaAudit
	}
	if e.ID == "" {
		e.ID = ulid.Make().String()
	}
	if e.Time.IsZero() {
		e.Time = a.now().UTC()
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("auth: audit event: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("auth: encode audit event: %w", err)
	}
	return a.pub.Publish(ctx, streams.Output{Subject: schemas.AuditSubject(e.Action), MsgID: "audit:" + e.ID, Data: data})
}
