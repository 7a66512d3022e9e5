package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// Notifier is told about every transition once it is stored. Implementations must not
// block for long; their failures are theirs to report (a transition is never undone
// because a notification failed).
type Notifier interface {
	Notify(ctx context.Context, r *Rollout, t Transition)
}

// Notifiers sends each transition to every notifier in turn.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, r *Rollout, t Transition) {
	for _, n := range ns {
		if n != nil {
			n.Notify(ctx, r, t)
		}
	}
}

// SchemaTransition identifies the webhook body of a transition.
const SchemaTransition = "studio.rollout.transition/v1"

// Event is what a webhook receives for a transition.
type Event struct {
	Schema     string       `json:"schema"`
	Rollout    string       `json:"rollout"`
	Task       schemas.Task `json:"task"`
	Model      string       `json:"model"`
	Stable     string       `json:"stable"`
	Canary     string       `json:"canary"`
	Transition Transition   `json:"transition"`
}

// Auditor is the audit log (auth.AuditLog satisfies it).
type Auditor interface {
	Audit(ctx context.Context, e schemas.AuditEvent) error
}

// AuditNotifier records each transition in the audit trail as action
// "rollout-<state>" (studio.audit.rollout-promoted, ...), resource
// "rollout/<task>/<id>", with the reason.
type AuditNotifier struct {
	Audit Auditor
	Log   logrus.FieldLogger
}

// Notify implements Notifier.
func (a AuditNotifier) Notify(ctx context.Context, r *Rollout, t Transition) {
	result := "allowed"
	if t.To == StateRolledBack || t.To == StatePaused && t.Actor == ActorController {
		result = "error"
	}
	reason := t.Reason
	if len(reason) > 500 {
		reason = reason[:500]
	}
	err := a.Audit.Audit(ctx, schemas.AuditEvent{
		Actor: t.Actor, Action: "rollout-" + string(t.To), Resource: "rollout/" + string(r.Task) + "/" + r.ID,
		Result: result, Reason: reason,
	})
	if err != nil && a.Log != nil {
		a.Log.WithError(err).WithField("rollout", r.ID).Warn("could not audit a rollout transition")
	}
}

// WebhookNotifier POSTs each transition as an Event (JSON) to URL: the alert hook for
// chat or paging systems. A failed delivery is logged and not retried.
type WebhookNotifier struct {
	URL    string
	Client *http.Client
	Log    logrus.FieldLogger
}

// Notify implements Notifier.
func (w WebhookNotifier) Notify(ctx context.Context, r *Rollout, t Transition) {
	body, _ := json.Marshal(Event{Schema: SchemaTransition, Rollout: r.ID, Task: r.Task, Model: r.Model, Stable: r.Stable, Canary: r.Canary, Transition: t})
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("the webhook answered %s", resp.Status)
		}
		return nil
	}()
	if err != nil && w.Log != nil {
		w.Log.WithError(err).WithField("rollout", r.ID).Warn("could not deliver a rollout alert to --rollout-webhook")
	}
}

// LogNotifier logs each transition (warning level for breaches).
type LogNotifier struct{ Log logrus.FieldLogger }

// Notify implements Notifier.
func (l LogNotifier) Notify(_ context.Context, r *Rollout, t Transition) {
	e := l.Log.WithFields(logrus.Fields{"rollout": r.ID, "task": r.Task, "canary": r.Canary, "stable": r.Stable,
		"from": t.From, "to": t.To, "weight": t.Weight, "actor": t.Actor})
	if t.To == StateRolledBack || t.To == StatePaused && t.Actor == ActorController {
		e.Warn("rollout: " + t.Reason)
		return
	}
	e.Info("rollout: " + t.Reason)
}
