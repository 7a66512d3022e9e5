package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

const webhookSecret = "whsec-test"

// receiver is a webhook endpoint that fails the first `failures` calls.
type receiver struct {
	mu       sync.Mutex
	failures int
	calls    []call
	srv      *httptest.Server
}

type call struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, failures int) *receiver {
	r := &receiver{failures: failures}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.calls = append(r.calls, call{header: req.Header.Clone(), body: body, at: time.Now()})
		fail := len(r.calls) <= r.failures
		r.mu.Unlock()
		if fail {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *receiver) get(i int) call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[i]
}

// runWebhooks runs the webhook sender until the returned stop is called.
func (e *env) runWebhooks(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.RunWebhooks(ctx, streams.Engine{JS: e.srv.JS}, "test", nil) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Error("RunWebhooks did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func webhookConfig() ingest.Config {
	return ingest.Config{WebhookSecret: webhookSecret, AllowPrivateCallbacks: true, WebhookBackoff: 50 * time.Millisecond, WebhookMaxBackoff: 200 * time.Millisecond}
}

func TestWebhookDeliversTheFinalStateSignedAndRetriesWithBackoff(t *testing.T) {
	p := newPipeline(t, webhookConfig())
	hook := newReceiver(t, 2)
	job := p.submitPNG(t, field("callback_url", hook.srv.URL+"/hooks/studio"))
	plain := p.submitPNG(t) // no callback: no call
	p.runWebhooks(t)
	p.runAll()
	p.openAll()
	p.waitStatus(t, plain.ID, schemas.StatusSucceeded)

	streamsEventually(t, func() bool { return hook.count() >= 3 }, "webhook not delivered after two failures")
	last := hook.get(2)
	var ev schemas.ResultEvent
	require.NoError(t, json.Unmarshal(last.body, &ev))
	require.Equal(t, job.ID, ev.JobID)
	require.Equal(t, schemas.StatusSucceeded, ev.Status, "the final state")
	require.Contains(t, ev.Results, "cutout")
	require.Equal(t, schemas.SchemaJobResult, last.header.Get(ingest.HeaderEvent))
	require.Equal(t, job.ID+".3", last.header.Get(ingest.HeaderDelivery))

	// The signature verifies with the tenant's derived secret and covers the body.
	sig := last.header.Get(ingest.HeaderSignature)
	ts, _, ok := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	require.True(t, ok, sig)
	sec, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	tenantKey := ingest.TenantWebhookSecret(webhookSecret, ev.Tenant)
	require.Equal(t, ingest.SignWebhook(time.Unix(sec, 0), last.body, tenantKey), sig)
	require.NotEqual(t, ingest.SignWebhook(time.Unix(sec, 0), last.body, webhookSecret), sig, "the configured secret itself signs nothing")

	// Retries back off, doubling: a redelivery never comes before its delay (these
	// are lower bounds, so a slow machine cannot break them).
	gap1 := hook.get(1).at.Sub(hook.get(0).at)
	gap2 := hook.get(2).at.Sub(hook.get(1).at)
	require.GreaterOrEqual(t, gap1, 50*time.Millisecond)
	require.GreaterOrEqual(t, gap2, 100*time.Millisecond, "the second retry waits twice as long")

	// Nothing else is delivered: the job without a callback gets none.
	p.waitConsumerIdle(t, schemas.StreamResults, ingest.DurableWebhooks, 2)
	require.Equal(t, 3, hook.count())
}

func TestWebhooksSurviveARestartOfTheSender(t *testing.T) {
	p := newPipeline(t, webhookConfig())
	hook := newReceiver(t, 0)
	job := p.submitPNG(t, field("callback_url", hook.srv.URL))
	stop := p.runWebhooks(t)
	stop() // the sender is down while the job finishes
	p.runAll()
	p.openAll()
	p.waitStatus(t, job.ID, schemas.StatusSucceeded)
	require.Equal(t, 0, hook.count())

	p.runWebhooks(t) // the durable consumer resumes where it stopped
	streamsEventually(t, func() bool { return hook.count() == 1 }, "the result was not delivered after the restart")
	var ev schemas.ResultEvent
	require.NoError(t, json.Unmarshal(hook.get(0).body, &ev))
	require.Equal(t, job.ID, ev.JobID)
}

func TestWebhookThatNeverSucceedsIsDeadLettered(t *testing.T) {
	cfg := webhookConfig()
	cfg.WebhookAttempts = 3
	p := newPipeline(t, cfg)
	hook := newReceiver(t, 1000)
	dlq, err := p.srv.NC.SubscribeSync(schemas.DLQSubject(ingest.StageWebhooks))
	require.NoError(t, err)
	require.NoError(t, p.srv.NC.Flush())
	job := p.submitPNG(t, field("callback_url", hook.srv.URL))
	p.runWebhooks(t)
	p.runAll()
	p.openAll()
	m, err := dlq.NextMsg(30 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "3", m.Header.Get(streams.HeaderDLQAttempts))
	require.Contains(t, m.Header.Get(streams.HeaderDLQReason), "503")
	var ev schemas.ResultEvent
	require.NoError(t, json.Unmarshal(m.Data, &ev))
	require.Equal(t, job.ID, ev.JobID)
	require.Equal(t, 3, hook.count())
}

func TestCallbackURLsAreChecked(t *testing.T) {
	img := encodePNG(t, gridImage(2, 2))
	e := newEnv(t, ingest.Config{WebhookSecret: webhookSecret})
	for _, bad := range []string{"not a url", "ftp://example.test/x", "http://user:pw@example.test/x", "https://"} {
		r := e.submit(t, file(img), field("task", "remove-background"), field("callback_url", bad))
		p := requireProblem(t, r, http.StatusUnprocessableEntity, "invalid_callback_url")
		require.Equal(t, []string{"callback_url"}, fieldsOf(p), bad)
	}
	off := newEnv(t, ingest.Config{})
	r := off.submit(t, file(img), field("task", "remove-background"), field("callback_url", "https://example.test/hook"))
	requireProblem(t, r, http.StatusUnprocessableEntity, "webhooks_disabled")
}

func TestWebhooksRefuseLoopbackTargetsUnlessAllowed(t *testing.T) {
	cfg := webhookConfig()
	cfg.AllowPrivateCallbacks = false
	cfg.WebhookAttempts = 1
	p := newPipeline(t, cfg)
	hook := newReceiver(t, 0)
	dlq, err := p.srv.NC.SubscribeSync(schemas.DLQSubject(ingest.StageWebhooks))
	require.NoError(t, err)
	require.NoError(t, p.srv.NC.Flush())
	// A name, not a literal, passes submission; it resolves to 127.0.0.1 at dial time.
	_, port, _ := strings.Cut(strings.TrimPrefix(hook.srv.URL, "http://"), ":")
	p.submitPNG(t, field("callback_url", "http://localhost:"+port+"/hook?token=s3cr3t"))
	p.runWebhooks(t)
	p.runAll()
	p.openAll()
	m, err := dlq.NextMsg(30 * time.Second)
	require.NoError(t, err)
	reason := m.Header.Get(streams.HeaderDLQReason)
	require.Contains(t, reason, "special-purpose range")
	require.NotContains(t, reason, "s3cr3t", "the dead-letter reason carries no query string")
	require.Equal(t, 0, hook.count(), "the private address was never contacted")
}
