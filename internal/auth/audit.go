package auth

import (
	"context"

	"github.com/creativeai-studio/studio/schemas"
)

// Auditor records security-relevant decisions; auth.AuditLog publishes them on
// studio.audit.<action>. Implementations fill in Schema, ID and Time when empty. The
// HTTP layer calls it for every authentication decision, admin action, job submission,
// download and deletion.
type Auditor interface {
	Audit(ctx context.Context, e schemas.AuditEvent) error
}

// Audit results.
const (
	ResultAllowed = "allowed"
	ResultDenied  = "denied"
	ResultError   = "error"
)

// Audit actions (one subject token each).
const (
	ActionAuthenticate = "authenticate" // every request's credential check
	ActionLogin        = "login"
	ActionTokenRefresh = "token-refresh"
	ActionLogout       = "logout"
	ActionAPIKeyCreate = "api-key-create"
	ActionAPIKeyRevoke = "api-key-revoke"
	ActionUserCreate   = "user-create"
	ActionUserSetTier  = "user-set-tier"
	ActionUserDelete   = "user-delete"
	ActionUserDisable  = "user-disable"
	ActionUserEnable   = "user-enable"
	ActionJobSubmit    = "job-submit"
	ActionJobRead      = "job-read"
	ActionJobCancel    = "job-cancel"
	ActionJobDelete    = "job-delete"
	ActionDownload     = "download"
	ActionTicketIssue  = "ticket-issue"  // a single-use event-stream ticket minted
	ActionTicketRedeem = "ticket-redeem" // a ticket presented on an event stream
)

// Anonymous is the actor of a decision about a caller who could not be identified.
const Anonymous = "anonymous"

// Request is what the HTTP layer knows about the request being audited.
type Request struct {
	IP        string
	RequestID string
	TraceID   string
}

// Event builds an audit event for p (Anonymous when p has no user). The actor is the
// user id even when an API key acted, so that erasing a user also erases their audit
// rows; the key appears in Resource when the action concerns it.
func Event(p Principal, action, resource, result string, r Request) schemas.AuditEvent {
	actor := p.User
	if actor == "" {
		actor = Anonymous
	}
	return schemas.AuditEvent{
		Actor: actor, Tenant: p.Tenant, Action: action, Resource: resource, Result: result,
		IP: r.IP, RequestID: r.RequestID, TraceID: r.TraceID,
	}
}
