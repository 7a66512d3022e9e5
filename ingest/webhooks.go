package ingest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Webhook headers.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>",
	// where key is the tenant's secret (TenantWebhookSecret); during a rotation a second
	// v1 made with the previous secret follows. Receivers accept when any v1 matches and
	// refuse stale timestamps, which defeats replays (see the README, Webhooks).
	HeaderSignature = "Studio-Signature"
	// HeaderEvent names the body's schema (studio.job.result/v1).
	HeaderEvent = "Studio-Event"
	// HeaderDelivery is unique per attempt: "<job id>.<attempt>".
	HeaderDelivery = "Studio-Delivery"
)

// DurableWebhooks is the consumer group on RESULTS that sends webhooks. Being durable,
// results that arrive while no ingest runs are delivered after it starts again.
const DurableWebhooks = "webhooks"

// StageWebhooks names the dead-letter subject studio.dlq.webhooks.
const StageWebhooks schemas.Stage = "webhooks"

// TenantWebhookSecret is generation 0 of a tenant's webhook signing secret, derived
// from the configured secret (auth.WebhookSecret): hex(HMAC-SHA256(key=secret,
// "studio-webhook-secret/v1/" + tenant)). Each tenant verifies with its own secret, so
// one tenant's signature is no signature for another; the operator hands each tenant
// its derived secret, never the configured one. After a tenant's own rotation its
// deliveries sign with later generations (WithWebhookSecrets).
func TenantWebhookSecret(secret, tenant string) string {
	return auth.WebhookSecret(secret, tenant, 0)
}

// SignWebhook returns the Studio-Signature value for body at time t, signed with each
// of keys in turn (the current tenant secret first, then the previous one while a
// rotation lasts; empty keys are skipped).
func SignWebhook(t time.Time, body []byte, keys ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	out := "t=" + ts
	for _, k := range keys {
		if k == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(k))
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		out += ",v1=" + hex.EncodeToString(m.Sum(nil))
	}
	return out
}

// VerifyWebhook reports whether header (a Studio-Signature value) signs body with key
// and is at most tolerance old (or early): the receiver's side of SignWebhook, in Go.
func VerifyWebhook(header string, body []byte, key string, now time.Time, tolerance time.Duration) bool {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return false
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// redactURL is raw without userinfo, query and fragment, for log lines and errors:
// callback URLs often carry a token in the query.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// RunWebhooks delivers every final job state that has a callback URL, from the durable
// consumer group "webhooks" on RESULTS, until ctx is cancelled. Failed calls are retried
// with exponential backoff (Config.WebhookBackoff, doubling, capped); after
// Config.WebhookAttempts the result goes to studio.dlq.webhooks. Several ingest
// processes share the work.
func (s *Service) RunWebhooks(ctx context.Context, engine streams.Engine, worker string, obs streams.Observer) error {
	if s.cfg.WebhookSecret == "" || s.index == nil {
		<-ctx.Done() // webhooks are off: nothing can have a callback URL
		return nil
	}
	client := s.webhookClient()
	gate := newTenantGate(s.cfg.WebhookTenantConcurrency, webhookTenantQueue*s.cfg.WebhookTenantConcurrency)
	attempts := newAttemptLog()
	r, err := engine.NewRunner(ctx, streams.BatchHandlerFunc(func(ctx context.Context, batch []*streams.Msg) []streams.Result {
		out := make([]streams.Result, len(batch))
		for i, m := range batch {
			out[i] = s.deliverFairly(ctx, gate, attempts, client, m)
		}
		return out
	}), streams.RunnerConfig{
		Stage: StageWebhooks, Worker: worker, Observer: obs,
		Spec: streams.ConsumerSpec{
			Stream: schemas.StreamResults, Durable: DurableWebhooks, Description: "sends webhooks for final job states",
			// No delivery limit: deferrals are deliveries too; deliverFairly counts calls.
			AckWait: 3 * s.cfg.WebhookTimeout, MaxAckPending: 4 * webhookSenders, MaxDeliver: -1,
		},
		// One message per batch: a batch would wait to fill, and calls run concurrently.
		// A tenant holds at most webhookTenantQueue*WebhookTenantConcurrency of the
		// senders (tenantGate), so the others stay free for other tenants.
		Concurrency: webhookSenders, MaxBatch: 1,
		BackoffBase: s.cfg.WebhookBackoff, BackoffMax: s.cfg.WebhookMaxBackoff,
		Log: s.log,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return r.Run(ctx)
}

// Webhook sender sizing: webhookSenders messages are handled at once per process; a
// tenant may hold webhookTenantQueue times its call limit of them (calling or waiting
// for one of its call slots), and its further results are handed back for later.
const (
	webhookSenders     = 64
	webhookTenantQueue = 4
)

// deliverFairly delivers one result under its tenant's bounds (tenantGate): when the
// tenant already holds its share of the senders the message is handed back without
// calling anyone, to be redelivered with backoff. The server counts such a
// deferral as a delivery, so the consumer has no delivery limit and the attempts that
// did call the receiver are counted here (attempts): after WebhookAttempts failed
// calls the result is dead-lettered, and retries back off by calls, not deliveries.
func (s *Service) deliverFairly(ctx context.Context, gate *tenantGate, attempts *attemptLog, client *http.Client, m *streams.Msg) streams.Result {
	var res schemas.ResultEvent
	if err := json.Unmarshal(m.Data, &res); err != nil || res.JobID == "" || schemas.ValidToken(res.Tenant) != nil {
		return streams.Result{Err: streams.Permanent(fmt.Errorf("not a result event: %v", err))}
	}
	release, ok, err := gate.acquire(ctx, res.Tenant)
	if err != nil {
		return streams.Result{Err: err}
	}
	policy := streams.RetryPolicy{BackoffBase: s.cfg.WebhookBackoff, BackoffMax: s.cfg.WebhookMaxBackoff}
	if !ok {
		// A slot frees when a call ends, within WebhookTimeout; and the busy tenant's
		// results come back ever more rarely, so their redeliveries (which the server
		// sends before new messages) leave room for every other tenant's.
		wait := streams.RetryPolicy{BackoffBase: max(s.cfg.WebhookBackoff, s.cfg.WebhookTimeout/4), BackoffMax: s.cfg.WebhookMaxBackoff}
		return streams.Result{Action: streams.ActionRetry, Delay: wait.Backoff(m.Delivered)}
	}
	defer release()
	attempt := attempts.begin(m.StreamSeq)
	err = s.deliverWebhook(ctx, client, m, attempt)
	switch {
	case err == nil || streams.IsPermanent(err):
		attempts.end(m.StreamSeq)
		return streams.Result{Err: err}
	case ctx.Err() != nil:
		return streams.Result{Err: err} // shutdown: handed back at once (streams.Retry)
	case attempt >= s.cfg.WebhookAttempts:
		attempts.end(m.StreamSeq)
		return streams.Result{Err: streams.Permanent(fmt.Errorf("%w after %d calls: %w", streams.ErrMaxDeliveries, attempt, err))}
	}
	m.Log(s.log).WithError(err).WithField("attempt", attempt).Warn("webhook call failed; retrying")
	return streams.Result{Err: err, Action: streams.ActionRetry, Delay: policy.Backoff(attempt)}
}

// attemptLog counts the calls made for each RESULTS message (by stream sequence) in
// this process. With several ingest processes, or after a restart, a result may be
// tried more often than WebhookAttempts, never less. Safe for concurrent use.
type attemptLog struct {
	mu sync.Mutex
	n  map[uint64]int
}

// maxTrackedAttempts bounds attemptLog: past it the log starts afresh (results
// another process finished are never ended here).
const maxTrackedAttempts = 1 << 16

func newAttemptLog() *attemptLog { return &attemptLog{n: map[uint64]int{}} }

// begin counts one more call for seq and returns its number, from 1.
func (a *attemptLog) begin(seq uint64) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.n) >= maxTrackedAttempts {
		a.n = map[uint64]int{}
	}
	a.n[seq]++
	return a.n[seq]
}

// end forgets seq: its result was delivered or dead-lettered.
func (a *attemptLog) end(seq uint64) {
	a.mu.Lock()
	delete(a.n, seq)
	a.mu.Unlock()
}

// tenantGate bounds webhook work per tenant: at most calls calls in flight, and at
// most held messages holding a sender (calling or waiting for a call slot). Tenants
// are independent: a tenant whose receiver hangs fills only its own slots. Safe for
// concurrent use; idle tenants take no memory.
type tenantGate struct {
	calls, held int
	mu          sync.Mutex
	tenants     map[string]*tenantSlots
}

type tenantSlots struct {
	sem  chan struct{}
	held int
}

func newTenantGate(calls, held int) *tenantGate {
	return &tenantGate{calls: calls, held: max(held, calls), tenants: map[string]*tenantSlots{}}
}

// acquire waits for one of tenant's call slots and returns its release. ok is false,
// at once, when the tenant already holds its share of senders. err is ctx's error when
// ctx ends while waiting.
func (g *tenantGate) acquire(ctx context.Context, tenant string) (release func(), ok bool, err error) {
	g.mu.Lock()
	t := g.tenants[tenant]
	if t == nil {
		t = &tenantSlots{sem: make(chan struct{}, g.calls)}
		g.tenants[tenant] = t
	}
	if t.held >= g.held {
		g.mu.Unlock()
		return nil, false, nil
	}
	t.held++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if t.held--; t.held == 0 {
			delete(g.tenants, tenant)
		}
		g.mu.Unlock()
	}
	select {
	case t.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, false, ctx.Err()
	}
	return func() {
		<-t.sem
		leave()
	}, true, nil
}

// deliverWebhook calls the job's callback URL with its result event, if it has one. An
// error is retried by the runner (a message that is not a result event fails for good).
func (s *Service) deliverWebhook(ctx context.Context, client *http.Client, m *streams.Msg, attempt int) error {
	var res schemas.ResultEvent
	if err := json.Unmarshal(m.Data, &res); err != nil || res.JobID == "" || schemas.ValidToken(res.Tenant) != nil {
		return streams.Permanent(fmt.Errorf("not a result event: %v", err))
	}
	log := s.log.WithFields(logrus.Fields{"job_id": res.JobID, "tenant": res.Tenant, "stage": "webhooks", "attempt": attempt})
	entry, ok, err := s.index.Get(ctx, res.Tenant, res.User, res.JobID)
	if err != nil {
		return fmt.Errorf("webhooks: job index unavailable: %w", err)
	}
	if !ok || entry.CallbackURL == "" {
		return nil // not submitted through this ingest, expired, or no callback
	}
	if entry.Batch != "" {
		return s.deliverBatchWebhook(ctx, client, m, &res, entry, attempt)
	}
	status, err := s.callWebhook(ctx, client, entry.CallbackURL, &res, m.Data, attempt)
	log = log.WithFields(logrus.Fields{"callback_url": redactURL(entry.CallbackURL), "status_code": status})
	if err != nil {
		return fmt.Errorf("webhook to %s: %w", redactURL(entry.CallbackURL), err)
	}
	log.Info("webhook delivered")
	return nil
}

// callWebhook POSTs the result event, signed; any 2xx is success.
func (s *Service) callWebhook(ctx context.Context, client *http.Client, target string, res *schemas.ResultEvent, body []byte, attempt int) (int, error) {
	h := http.Header{}
	h.Set("Studio-Job-Id", res.JobID)
	if res.TraceParent != "" {
		h.Set("traceparent", res.TraceParent)
	}
	return s.postWebhook(ctx, client, target, res.Tenant, res.Schema, res.JobID+"."+strconv.Itoa(attempt), h, body)
}

// postWebhook POSTs body to target, signed with tenant's secret, with the event and
// delivery headers and extra; any 2xx is success.
func (s *Service) postWebhook(ctx context.Context, client *http.Client, target, tenant, event, delivery string, extra http.Header, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("callback URL cannot be requested")
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "studio-webhooks/1")
	req.Header.Set(HeaderEvent, event)
	req.Header.Set(HeaderDelivery, delivery)
	keys, err := s.webhookKeys(ctx, tenant)
	if err != nil {
		return 0, err
	}
	req.Header.Set(HeaderSignature, SignWebhook(time.Now(), body, keys...))
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redactURL(ue.URL) // the error reaches logs and the DLQ reason
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("callback answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// webhookKeys returns the secrets that sign tenant's deliveries now: each valid
// generation of the tenant (two during its own rotation's window) under the configured
// secret, then under Config.WebhookPreviousSecret while a rotation of that lasts.
func (s *Service) webhookKeys(ctx context.Context, tenant string) ([]string, error) {
	var g auth.WebhookGeneration
	if s.webhookSecrets != nil {
		var err error
		if g, err = s.webhookSecrets.Get(ctx, tenant); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	keys := g.Secrets(s.cfg.WebhookSecret, tenant, now)
	if s.cfg.WebhookPreviousSecret != "" {
		keys = append(keys, g.Secrets(s.cfg.WebhookPreviousSecret, tenant, now)...)
	}
	return keys, nil
}

// webhookClient connects only to public addresses unless AllowPrivateCallbacks (see
// WebhookDialer: the check runs on the address actually dialled, after DNS). Redirects
// are not followed, and no proxy is used.
func (s *Service) webhookClient() *http.Client {
	dialer := WebhookDialer(s.cfg.AllowPrivateCallbacks)
	return &http.Client{
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 5 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
