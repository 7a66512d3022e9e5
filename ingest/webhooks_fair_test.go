package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
)

// hangingReceiver answers no webhook until release is closed, and records how many
// calls it held at once.
type hangingReceiver struct {
	srv     *httptest.Server
	release chan struct{}
	mu      sync.Mutex
	now     int
	most    int
	done    map[string]bool
}

func newHangingReceiver(t *testing.T) *hangingReceiver {
	r := &hangingReceiver{release: make(chan struct{}), done: map[string]bool{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.now++
		r.most = max(r.most, r.now)
		r.mu.Unlock()
		select {
		case <-r.release:
		case <-req.Context().Done():
		}
		r.mu.Lock()
		r.now--
		r.done[req.Header.Get("Studio-Job-Id")] = true
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.unblock)
	return r
}

// unblock lets every held and later call answer.
func (r *hangingReceiver) unblock() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

// publishResult indexes a job with a callback URL and publishes its final state.
func publishResult(t *testing.T, e *env, tenant, jobID, callback string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, e.index.Add(ctx, tenant, "u1", jobs.IndexEntry{JobID: jobID, Task: schemas.TaskRemoveBackground, CallbackURL: callback, SubmittedAt: time.Now()}))
	ev := schemas.ResultEvent{Schema: schemas.SchemaJobResult, JobID: jobID, Tenant: tenant, User: "u1", Task: schemas.TaskRemoveBackground, Status: schemas.StatusSucceeded}
	data, err := json.Marshal(ev)
	require.NoError(t, err)
	_, err = e.srv.JS.Publish(ctx, schemas.ResultSubject(tenant, schemas.TaskRemoveBackground), data)
	require.NoError(t, err)
}

// TestASlowTenantsReceiverDoesNotDelayAnotherTenantsWebhooks queues 150 results for a
// tenant whose receiver hangs, more than the process has senders, then results for a
// second tenant, and measures how long the second tenant waits for its callbacks.
func TestASlowTenantsReceiverDoesNotDelayAnotherTenantsWebhooks(t *testing.T) {
	cfg := webhookConfig()
	cfg.WebhookTenantConcurrency = 2
	cfg.WebhookTimeout = 30 * time.Second // the hanging receiver holds its calls for the whole test
	cfg.WebhookAttempts = 2
	cfg.WebhookMaxBackoff = 2 * time.Second
	e := newEnv(t, cfg)
	slow := newHangingReceiver(t)
	fast := newReceiver(t, 0)

	const backlog = 150
	for i := range backlog {
		publishResult(t, e, "slowco", fmt.Sprintf("slow%03d", i), slow.srv.URL)
	}
	e.runWebhooks(t)
	t.Cleanup(slow.unblock) // before the sender stops: it waits for its calls
	streamsEventually(t, func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return slow.now == 2
	}, "the slow tenant's receiver never got its calls")

	const n = 10
	start := time.Now()
	for i := range n {
		publishResult(t, e, "fastco", fmt.Sprintf("fast%02d", i), fast.srv.URL)
	}
	streamsEventually(t, func() bool { return fast.count() >= n }, "the fast tenant's webhooks were not delivered while the slow one hung")
	var worst time.Duration
	for i := range n {
		worst = max(worst, fast.get(i).at.Sub(start))
	}
	t.Logf("fast tenant: %d callbacks, worst latency %s, behind %d hanging results of another tenant", n, worst, backlog)
	require.Less(t, worst, 5*time.Second, "one tenant's hanging receiver delayed another tenant's callbacks")

	slow.mu.Lock()
	most := slow.most
	slow.mu.Unlock()
	require.Equal(t, cfg.WebhookTenantConcurrency, most, "a tenant's calls in flight are bounded")

	// Released, the slow tenant gets every callback: the deferrals used none of its
	// attempts (two allowed here).
	slow.unblock()
	streamsEventually(t, func() bool {
		slow.mu.Lock()
		defer slow.mu.Unlock()
		return len(slow.done) == backlog
	}, "the slow tenant's backlog was not delivered once its receiver recovered")
}

// TestWebhookDeliveryHeaderCountsCallsNotDeferrals: Studio-Delivery numbers the calls
// made, which deferrals do not change.
func TestWebhookDeliveryHeaderCountsCallsNotDeferrals(t *testing.T) {
	cfg := webhookConfig()
	cfg.WebhookTenantConcurrency = 1
	e := newEnv(t, cfg)
	hook := newReceiver(t, 1) // the first call fails
	publishResult(t, e, "acme", "job1", hook.srv.URL)
	e.runWebhooks(t)
	streamsEventually(t, func() bool { return hook.count() >= 2 }, "webhook not retried")
	require.Equal(t, "job1.1", hook.get(0).header.Get(ingest.HeaderDelivery))
	require.Equal(t, "job1.2", hook.get(1).header.Get(ingest.HeaderDelivery))
}
