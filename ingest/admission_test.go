package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// The admission rules, each proved on both entries: the table runs every rule over
// HTTP (POST /v2/jobs with a JSON body) and over NATS (studio.submit.<task>), against
// the same secured service on a real embedded server, so a rule cannot hold on one
// entry only.

// submission is what a caller sends, whatever the entry.
type submission struct {
	bearer         string
	idempotencyKey string
	body           schemas.JobRequest
}

// outcome is what the caller gets back, whatever the entry.
type outcome struct {
	status     int // 202 for an accepted job; the problem's status otherwise
	code       string
	fields     []string
	retryAfter string
	jobID      string
	replayed   bool
	raw        []byte
}

// admissionEntry submits a job through one transport.
type admissionEntry struct {
	name   string
	submit func(t *testing.T, e *secureEnv, s submission) outcome
}

var admissionEntries = []admissionEntry{
	{"HTTP", submitHTTP},
	{"NATS", submitNATS},
}

func submitHTTP(t *testing.T, e *secureEnv, s submission) outcome {
	t.Helper()
	data, err := json.Marshal(s.body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, e.api.URL+"/v2/jobs", bytes.NewReader(data))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if s.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+s.bearer)
	}
	if s.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", s.idempotencyKey)
	}
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := outcome{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), replayed: res.Header.Get("Idempotent-Replayed") == "true", raw: raw}
	if res.StatusCode == http.StatusAccepted {
		var j struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(raw, &j), "%s", raw)
		out.jobID = j.ID
		return out
	}
	var p ingest.Problem
	require.NoError(t, json.Unmarshal(raw, &p), "%s", raw)
	out.code, out.fields = p.Code, fieldsOf(p)
	return out
}

func submitNATS(t *testing.T, e *secureEnv, s submission) outcome {
	t.Helper()
	m := nats.NewMsg(schemas.SubmitSubject(s.body.Task))
	body := s.body
	body.Task = "" // the subject names it
	data, err := json.Marshal(body)
	require.NoError(t, err)
	m.Data = data
	if s.bearer != "" {
		m.Header.Set("Authorization", "Bearer "+s.bearer)
	}
	if s.idempotencyKey != "" {
		m.Header.Set("Idempotency-Key", s.idempotencyKey)
	}
	res, err := e.upstream.RequestMsg(m, 30*time.Second)
	require.NoError(t, err)
	out := outcome{retryAfter: res.Header.Get("Retry-After"), raw: res.Data}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		out.status, err = strconv.Atoi(code)
		require.NoError(t, err)
		var p ingest.Problem
		require.NoError(t, json.Unmarshal(res.Data, &p), "%s", res.Data)
		require.Equal(t, out.status, p.Status, "the error header and the problem agree")
		out.code, out.fields = p.Code, fieldsOf(p)
		return out
	}
	var reply schemas.SubmitReply
	require.NoError(t, json.Unmarshal(res.Data, &reply), "%s", res.Data)
	out.status, out.jobID, out.replayed = http.StatusAccepted, reply.JobID, reply.Replayed
	return out
}

// admissionEnv is a secured service serving both entries, with an audit trail reader.
type admissionEnv struct {
	*secureEnv
	audit *auditTrail
}

func newAdmissionEnv(t *testing.T) *admissionEnv {
	t.Helper()
	return admissionEnvOn(t, newSecureEnv(t))
}

// admissionEnvOn serves the NATS entry of e and follows its audit trail.
func admissionEnvOn(t *testing.T, e *secureEnv) *admissionEnv {
	t.Helper()
	trail := followAudit(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.ServeNATS(ctx, streams.RequestServer{NC: e.srv.NC}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("ServeNATS did not return")
		}
	})
	streamsEventually(t, func() bool {
		_, err := e.srv.NC.Request("$SRV.PING.studio-ingest", nil, 200*time.Millisecond)
		return err == nil
	}, "the NATS entry did not start")
	nc, err := nats.Connect(e.srv.Embedded.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	e.upstream = nc
	return &admissionEnv{secureEnv: e, audit: trail}
}

// apiKey stores an API key for a user with the given scopes and returns it.
func (e *secureEnv) apiKey(t *testing.T, tenant, user string, scopes ...auth.Scope) string {
	t.Helper()
	k, token, err := auth.NewAPIKey(tenant, user, "test", schemas.TierPremium, scopes, time.Time{}, 0, time.Now())
	require.NoError(t, err)
	require.NoError(t, e.sec.Keys.Create(context.Background(), k))
	return token
}

// auditTrail collects every audit event the server publishes.
type auditTrail struct {
	mu     sync.Mutex
	events []schemas.AuditEvent
}

func followAudit(t *testing.T, e *secureEnv) *auditTrail {
	t.Helper()
	a := &auditTrail{}
	sub, err := e.srv.NC.Subscribe(schemas.AuditSubject(">"), func(m *nats.Msg) {
		var ev schemas.AuditEvent
		if json.Unmarshal(m.Data, &ev) == nil {
			a.mu.Lock()
			a.events = append(a.events, ev)
			a.mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, e.srv.NC.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return a
}

// requireEvent waits for an event of action with result, reason and resource (each
// checked when not empty) and returns it.
func (a *auditTrail) requireEvent(t *testing.T, action, result, reason, resource string) schemas.AuditEvent {
	t.Helper()
	var found schemas.AuditEvent
	streamsEventually(t, func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, ev := range a.events {
			if ev.Action == action && ev.Result == result && (reason == "" || ev.Reason == reason) && (resource == "" || ev.Resource == resource) {
				found = ev
				return true
			}
		}
		return false
	}, "no %s audit event with result %q, reason %q, resource %q", action, result, reason, resource)
	return found
}

func (a *auditTrail) count(action string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ev := range a.events {
		if ev.Action == action {
			n++
		}
	}
	return n
}

// jobBody is a valid request for a small image, asking for premium.
func jobBody(t *testing.T) schemas.JobRequest {
	t.Helper()
	return schemas.JobRequest{
		Task: schemas.TaskRemoveBackground, Tier: schemas.TierPremium,
		Image: &schemas.ImageInput{Data: encodePNG(t, gridImage(8, 8))},
	}
}

func TestEveryAdmissionRuleHoldsOnBothEntries(t *testing.T) {
	ctx := context.Background()
	rules := []struct {
		name string
		run  func(t *testing.T, e *admissionEnv, entry admissionEntry)
	}{
		{"a request without a credential is refused with 401", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			out := entry.submit(t, e.secureEnv, submission{body: jobBody(t)})
			require.Equal(t, http.StatusUnauthorized, out.status, "%s", out.raw)
			require.Equal(t, "unauthenticated", out.code)
			e.audit.requireEvent(t, auth.ActionAuthenticate, auth.ResultDenied, "", "")
		}},
		{"a key with only jobs:read cannot submit", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			key := e.apiKey(t, "tb", "bob", auth.ScopeJobsRead)
			out := entry.submit(t, e.secureEnv, submission{bearer: key, body: jobBody(t)})
			require.Equal(t, http.StatusForbidden, out.status, "%s", out.raw)
			require.Equal(t, "forbidden", out.code)
			require.Contains(t, string(out.raw), "jobs:write")
			ev := e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "forbidden", "")
			require.Equal(t, "bob", ev.Actor)
		}},
		{"the credential of a deleted user submits nothing", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			key := e.apiKey(t, "tb", "bob", auth.ScopeJobsWrite)
			require.NoError(t, e.sec.Users.Delete(ctx, "tb", "bob"))
			out := entry.submit(t, e.secureEnv, submission{bearer: key, body: jobBody(t)})
			// The credential itself stops working (auth.Authenticator.Users), before
			// admission: 401, and the refusal is audited as an authentication.
			require.Equal(t, http.StatusUnauthorized, out.status, "%s", out.raw)
			require.Equal(t, "invalid_token", out.code)
			require.Contains(t, string(out.raw), "no longer exists")
			e.audit.requireEvent(t, auth.ActionAuthenticate, auth.ResultDenied, "", "")
		}},
		{"the tier comes from the user record even when the request and the key say premium", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			key := e.apiKey(t, "tb", "bob", auth.ScopeJobsWrite) // a premium key of a normal user
			out := entry.submit(t, e.secureEnv, submission{bearer: key, body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			rec, err := e.jobs.Get(ctx, out.jobID)
			require.NoError(t, err)
			require.Equal(t, schemas.TierNormal, rec.Tier)
			require.Equal(t, "tb", rec.Tenant)
			require.Equal(t, "bob", rec.User)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultAllowed, "", "job/"+out.jobID)
		}},
		{"a request naming another tenant or user is refused", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			body := jobBody(t)
			body.Tenant, body.User = "ta", "alice"
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
			require.Equal(t, http.StatusForbidden, out.status, "%s", out.raw)
			require.Equal(t, "identity_mismatch", out.code)
			require.ElementsMatch(t, []string{"tenant", "user"}, out.fields)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "identity_mismatch", "")

			body.Tenant, body.User = "tb", "bob" // naming oneself is fine
			require.Equal(t, http.StatusAccepted, entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body}).status)
		}},
		{"over the rate limit the answer is 429 with Retry-After", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			for range 2 { // carol's free tier allows 2 requests an hour
				out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["carol"], body: jobBody(t)})
				require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			}
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["carol"], body: jobBody(t)})
			require.Equal(t, http.StatusTooManyRequests, out.status, "%s", out.raw)
			require.Equal(t, "rate_limited", out.code)
			secs, err := strconv.Atoi(out.retryAfter)
			require.NoError(t, err, "Retry-After %q", out.retryAfter)
			require.Positive(t, secs)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "rate_limited", "")

			// The limit is checked before the request is read: an invalid one gets 429 too.
			bad := jobBody(t)
			bad.Params = map[string]any{"threshold": 7}
			out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["carol"], body: bad})
			require.Equal(t, http.StatusTooManyRequests, out.status, "%s", out.raw)
		}},
		{"the job over the active-job cap is refused and others are not", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			for range 3 {
				out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
				require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			}
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusTooManyRequests, out.status, "%s", out.raw)
			require.Equal(t, "too_many_active_jobs", out.code)
			active, err := e.sec.Active.Active(ctx, "tb", "bob")
			require.NoError(t, err)
			require.Len(t, active, 3, "the refused job holds no slot")
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "too_many_active_jobs", "")
			require.Equal(t, http.StatusAccepted, entry.submit(t, e.secureEnv, submission{bearer: e.tokens["alice"], body: jobBody(t)}).status)
		}},
		{"an Idempotency-Key replays the first job and refuses another body", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			s := submission{bearer: e.tokens["bob"], idempotencyKey: "order-42", body: jobBody(t)}
			first := entry.submit(t, e.secureEnv, s)
			require.Equal(t, http.StatusAccepted, first.status, "%s", first.raw)
			again := entry.submit(t, e.secureEnv, s)
			require.Equal(t, http.StatusAccepted, again.status, "%s", again.raw)
			require.Equal(t, first.jobID, again.jobID)
			require.False(t, first.replayed)
			require.True(t, again.replayed)
			active, err := e.sec.Active.Active(ctx, "tb", "bob")
			require.NoError(t, err)
			require.Equal(t, []string{first.jobID}, active, "a replay takes no second slot")

			s.body.Params = map[string]any{"threshold": 0.9}
			conflict := entry.submit(t, e.secureEnv, s)
			require.Equal(t, http.StatusConflict, conflict.status, "%s", conflict.raw)
			require.Equal(t, "idempotency_conflict", conflict.code)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "idempotency_conflict", "")
		}},
		{"invalid input is refused naming the field and stores nothing", func(t *testing.T, e *admissionEnv, entry admissionEntry) {
			body := jobBody(t)
			body.Params = map[string]any{"threshold": 7}
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
			require.Equal(t, http.StatusUnprocessableEntity, out.status, "%s", out.raw)
			require.Equal(t, "invalid_params", out.code)
			require.Contains(t, out.fields, "params.threshold")

			body = jobBody(t)
			body.Image = &schemas.ImageInput{Data: []byte("hello, world")}
			out = entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
			require.Equal(t, http.StatusUnsupportedMediaType, out.status, "%s", out.raw)
			require.Equal(t, "not_an_image", out.code)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "not_an_image", "")

			active, err := e.sec.Active.Active(ctx, "tb", "bob")
			require.NoError(t, err)
			require.Empty(t, active, "refused input holds no slot")
			st, err := e.srv.JS.Stream(ctx, schemas.StreamRequests)
			require.NoError(t, err)
			info, err := st.Info(ctx)
			require.NoError(t, err)
			require.Zero(t, info.State.Msgs, "refused input queues nothing")
		}},
	}
	for _, rule := range rules {
		t.Run(rule.name, func(t *testing.T) {
			for _, entry := range admissionEntries {
				t.Run(entry.name, func(t *testing.T) {
					e := newAdmissionEnv(t)
					rule.run(t, e, entry)
				})
			}
		})
	}
}

func TestEachSubmissionLeavesExactlyOneSubmitAuditEvent(t *testing.T) {
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			ok := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, ok.status, "%s", ok.raw)
			ev := e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultAllowed, "", "job/"+ok.jobID)
			require.Equal(t, "bob", ev.Actor)
			require.Equal(t, "tb", ev.Tenant)
			require.NotEmpty(t, ev.RequestID)
			require.Empty(t, ev.Reason)

			bad := jobBody(t)
			bad.Params = map[string]any{"threshold": 7}
			require.Equal(t, http.StatusUnprocessableEntity, entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: bad}).status)
			e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, "invalid_params", "")

			// Both decisions are stored, and nothing else was recorded as a submission.
			require.Equal(t, 2, e.audit.count(auth.ActionJobSubmit))
		})
	}
}
