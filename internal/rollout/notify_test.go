package rollout_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestEveryTransitionIsAuditedAndPostedToTheWebhook(t *testing.T) {
	srv, store, _, _ := setup(t)
	ctx := context.Background()
	var mu sync.Mutex
	var posted []rollout.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e rollout.Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		posted = append(posted, e)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	m := &rollout.Manager{Store: store, Catalog: catalog(t), Notify: rollout.Notifiers{
		rollout.AuditNotifier{Audit: auth.NewAuditLog(streams.JSPublisher{JS: srv.JS}), Log: logrus.New()},
		rollout.WebhookNotifier{URL: hook.URL},
	}}
	if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b", By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Pause(ctx, schemas.TaskUpscale, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Abort(ctx, schemas.TaskUpscale, "ops"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(posted) != 3 || posted[2].Schema != rollout.SchemaTransition || posted[2].Transition.To != rollout.StateAborted || posted[2].Canary != "b" {
		t.Errorf("webhook got %+v", posted)
	}
	mu.Unlock()
	c, err := srv.JS.OrderedConsumer(ctx, schemas.StreamAudit, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"studio.audit.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	streamstest.Eventually(t, 5*time.Second, func() bool {
		msgs, err := c.Fetch(10, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return false
		}
		for msg := range msgs.Messages() {
			var e schemas.AuditEvent
			_ = json.Unmarshal(msg.Data(), &e)
			if !strings.HasPrefix(e.Action, "rollout-") {
				continue
			}
			if e.Actor != "ops" || e.Resource == "" {
				t.Errorf("audit event %+v", e)
			}
			actions = append(actions, e.Action)
		}
		return len(actions) >= 3
	}, "audit events: %v", actions)
	if actions[0] != "rollout-pending" || actions[1] != "rollout-paused" || actions[2] != "rollout-aborted" {
		t.Errorf("audited %v", actions)
	}
}
