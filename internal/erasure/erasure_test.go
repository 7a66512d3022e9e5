package erasure_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// world is a deployment holding the data of two users of tenant acme (alice, who is
// erased, and bob) and of a different alice in tenant globex.
type world struct {
	t      *testing.T
	s      *streamstest.Server
	blobs  blob.Store
	jobs   *jobs.Store
	users  *auth.Users
	keys   *auth.APIKeys
	issuer *auth.Issuer
	audit  *auth.AuditLog
	// jobIDs of each "tenant/user".
	jobIDs   map[string][]string
	sessions map[string]auth.TokenPair
	apiKeys  map[string]string
}

// newWorld builds the world on the JetStream object store, wrapped for metrics when
// instrumented (as `studio up` and `studio ingest` wire it).
func newWorld(t *testing.T, instrumented bool) *world {
	ctx := context.Background()
	s := streamstest.Start(t)
	w := &world{t: t, s: s, jobIDs: map[string][]string{}, sessions: map[string]auth.TokenPair{}, apiKeys: map[string]string{}}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	obs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	must(err)
	w.blobs = obs
	if instrumented {
		w.blobs = metrics.New().InstrumentBlobs(obs, "jetstream")
	}
	w.jobs, err = jobs.Open(ctx, s.JS)
	must(err)
	w.users, err = auth.OpenUsers(ctx, s.JS)
	must(err)
	w.keys, err = auth.OpenAPIKeys(ctx, s.JS)
	must(err)
	tokens, err := auth.OpenTokens(ctx, s.JS)
	must(err)
	k, _ := auth.GenerateKey("k1", auth.EdDSA)
	ks, _ := auth.NewKeySet(k)
	w.issuer, err = auth.NewIssuer(ks, tokens, w.users)
	must(err)
	w.audit = auth.NewAuditLog(streams.JSPublisher{JS: s.JS})
	cache, err := jobs.OpenCache(ctx, s.JS)
	must(err)
	active, err := quota.OpenActiveJobs(ctx, s.JS)
	must(err)
	limiter, err := quota.OpenRateLimiter(ctx, s.JS)
	must(err)
	index, err := jobs.OpenIndex(ctx, s.JS)
	must(err)
	pub := streams.JSPublisher{JS: s.JS}

	for _, who := range []struct{ tenant, user string }{{"acme", "alice"}, {"acme", "bob"}, {"globex", "alice"}} {
		tu := who.tenant + "/" + who.user
		must(w.users.Create(ctx, &auth.User{Tenant: who.tenant, ID: who.user, Tier: schemas.TierNormal}))
		pair, err := w.issuer.Issue(ctx, who.tenant, who.user)
		must(err)
		w.sessions[tu] = pair
		key, tok, err := auth.NewAPIKey(who.tenant, who.user, "ci", schemas.TierNormal, []auth.Scope{auth.ScopeJobsWrite}, time.Time{}, 100, time.Now())
		must(err)
		must(w.keys.Create(ctx, key))
		_, err = w.keys.Authenticate(ctx, tok)
		must(err)
		w.apiKeys[tu] = tok
		_, err = limiter.Allow(ctx, who.tenant, who.user, quota.DefaultPolicy().For(schemas.TierNormal).Window())
		must(err)
		_, err = limiter.AllowFor(ctx, who.tenant, who.user, quota.PurposeAnalytics, quota.DefaultPolicy().AnalyticsWindow())
		must(err)
		for i, status := range []schemas.Status{schemas.StatusSucceeded, schemas.StatusRunning} {
			id := ulid.Make().String()
			w.jobIDs[tu] = append(w.jobIDs[tu], id)
			input := w.put("inputs/"+who.tenant+"/"+id+"/original.png", id)
			w.put("work/"+id+"/input.f32", id)
			result := w.put("results/"+who.tenant+"/"+id+"/cutout.png", id)
			rec := &schemas.JobRecord{ID: id, Tenant: who.tenant, User: who.user, Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground,
				Status: status, Input: input, Results: map[string]schemas.ObjectRef{"cutout": result}, SubmittedAt: time.Now()}
			must(w.jobs.Create(ctx, rec))
			if i == 0 { // the second job is only found by scanning the jobs bucket
				must(index.Add(ctx, who.tenant, who.user, jobs.IndexEntry{JobID: id, Task: rec.Task, SubmittedAt: time.Now()}))
			}
			must(active.Acquire(ctx, who.tenant, who.user, id, 0))
			must(cache.Put(ctx, jobs.CacheKey(who.tenant, id, rec.Task, "isnet", "small", nil), jobs.CacheEntry{JobID: id, User: who.user, Results: rec.Results}))

			ev := schemas.JobEvent{Schema: schemas.SchemaJobRequested, JobID: id, Tenant: who.tenant, User: who.user, Tier: rec.Tier, Task: rec.Task, Input: input}
			res := schemas.ResultFromRecord(rec, "")
			run := schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: id, Tenant: who.tenant, User: who.user, Stage: schemas.StagePreprocess}
			fb := schemas.Feedback{Schema: schemas.SchemaFeedback, ID: ulid.Make().String(), JobID: id, Tenant: who.tenant, User: who.user, Rating: 1, Time: time.Now()}
			httpReq := schemas.HTTPRequest{Schema: schemas.SchemaHTTPRequest, ID: ulid.Make().String(), Tenant: who.tenant, User: who.user, Route: "POST /v1/jobs", Status: 202, SampleRate: 1, Time: time.Now()}
			for _, out := range []struct {
				subject string
				v       any
			}{
				{schemas.RequestSubject(rec.Tier, rec.Task), ev},
				{schemas.PreprocessedSubject(rec.Tier, "isnet"), ev},
				{schemas.InferredSubject(rec.Tier, rec.Task), ev},
				{schemas.PostprocessedSubject(rec.Tier, rec.Task), ev},
				{schemas.ResultSubject(who.tenant, rec.Task), res},
				{schemas.TelemetrySubject(schemas.StagePreprocess), run},
				{schemas.SubjectHTTPTelemetry, httpReq},
				// Batched telemetry: the user's rows inside a batch message.
				{schemas.SubjectTelemetryBatch, schemas.TelemetryBatch{Schema: schemas.SchemaTelemetryBatch, Producer: "w", Seq: 1,
					StageRuns: []schemas.StageRun{run}, HTTPRequests: []schemas.HTTPRequest{httpReq}}},
				{schemas.SubjectFeedback, fb},
				{schemas.DLQSubject(schemas.StageInference), ev},
			} {
				data, _ := json.Marshal(out.v)
				must(pub.Publish(ctx, streams.Output{Subject: out.subject, Data: data}))
			}
			must(w.audit.Audit(ctx, auth.Event(auth.Principal{Tenant: who.tenant, User: who.user}, auth.ActionJobSubmit, "job/"+id, auth.ResultAllowed, auth.Request{IP: "192.0.2.1"})))
			// An operator downloading the job: the actor is not the user, the resource is.
			must(w.audit.Audit(ctx, auth.Event(auth.Principal{Tenant: who.tenant, User: "operator"}, auth.ActionDownload, "job/"+id, auth.ResultAllowed, auth.Request{})))
		}
		must(w.audit.Audit(ctx, auth.Event(auth.Principal{Tenant: who.tenant, User: "operator"}, auth.ActionUserSetTier, "user/"+who.user, auth.ResultAllowed, auth.Request{})))
	}
	// alice's third job was served from the cache with bob's results: those stay bob's.
	bobJob := w.jobIDs["acme/bob"][0]
	reused := ulid.Make().String()
	w.jobIDs["acme/alice"] = append(w.jobIDs["acme/alice"], reused)
	bobResult, err := w.blobs.Stat(ctx, "results/acme/"+bobJob+"/cutout.png")
	must(err)
	must(w.jobs.Create(ctx, &schemas.JobRecord{ID: reused, Tenant: "acme", User: "alice", Status: schemas.StatusSucceeded, CacheHit: true,
		Input:   w.put("inputs/acme/"+reused+"/original.png", reused),
		Results: map[string]schemas.ObjectRef{"cutout": {Key: bobResult.Key, Size: bobResult.Size, SHA256: bobResult.SHA256}}}))
	return w
}

func (w *world) put(key, jobID string) schemas.ObjectRef {
	w.t.Helper()
	body := []byte("pixels of job " + jobID)
	info, err := w.blobs.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), "application/octet-stream")
	if err != nil {
		w.t.Fatal(err)
	}
	return schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256}
}

// storedMessage is one message of any stream, KV buckets and the object store included.
type storedMessage struct {
	stream, subject string
	data            []byte
}

func (w *world) everyMessage() []storedMessage {
	w.t.Helper()
	ctx := context.Background()
	var out []storedMessage
	names := w.s.JS.StreamNames(ctx)
	for name := range names.Name() {
		st, err := w.s.JS.Stream(ctx, name)
		if err != nil {
			w.t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			w.t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				w.t.Fatal(err)
			}
			out = append(out, storedMessage{stream: name, subject: m.Subject, data: m.Data})
		}
	}
	if names.Err() != nil {
		w.t.Fatal(names.Err())
	}
	return out
}

// mentions reports whether a message concerns one user: it names one of the user's
// jobs, or the tenant and user id together (which is how KV keys, records and events
// name a user).
func mentions(m storedMessage, tenant, user string, jobs []string) bool {
	text := m.subject + " " + string(m.data)
	for _, id := range jobs {
		if strings.Contains(text, id) {
			return true
		}
	}
	return strings.Contains(text, tenant) && strings.Contains(text, user)
}

func TestEraseRemovesEverythingOfOneUserAndNothingElse(t *testing.T) {
	for _, tc := range []struct {
		name         string
		instrumented bool
	}{
		{"on the JetStream object store", false},
		{"on the JetStream object store wrapped for metrics", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testEraseOneUser(t, newWorld(t, tc.instrumented)) })
	}
}

func testEraseOneUser(t *testing.T, w *world) {
	ctx := context.Background()
	alice, bob, otherAlice := w.jobIDs["acme/alice"], w.jobIDs["acme/bob"], w.jobIDs["globex/alice"]
	before := w.everyMessage()
	eraser, err := erasure.NewEraser(ctx, w.s.JS, w.blobs)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eraser.Erase(ctx, "acme", "alice", erasure.WithRequestedBy("operator"))
	if err != nil {
		t.Fatal(err)
	}
	after := w.everyMessage()

	// survivors counts the messages of one user that do not also concern alice (her
	// record of the job that reused bob's results names bob's job, and goes).
	survivors := func(tenant, user string, jobs []string, msgs []storedMessage) int {
		n := 0
		for _, m := range msgs {
			if mentions(m, tenant, user, jobs) && !mentions(m, "acme", "alice", alice) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{name: "the report lists the jobs, the in-flight one and what was removed", check: func(t *testing.T) {
			if len(rep.Jobs) != 3 || len(rep.InFlight) != 1 || rep.InFlight[0] != alice[1] {
				t.Fatalf("jobs %v, in flight %v; want alice's 3 jobs with %s in flight", rep.Jobs, rep.InFlight, alice[1])
			}
			if len(rep.Objects) != 7 || len(rep.APIKeys) != 1 || rep.Sessions != 1 || rep.RequestID == "" {
				t.Fatalf("report %+v: want 7 objects, 1 API key, 1 session and a request id", rep)
			}
			for _, stream := range []string{"REQUESTS", "PREPROCESSED", "INFERRED", "POSTPROCESSED", "RESULTS", "TELEMETRY", "AUDIT", "FEEDBACK", "DLQ"} {
				if rep.Messages[stream] == 0 {
					t.Errorf("no messages deleted from %s", stream)
				}
			}
			for _, want := range []string{"users/acme.alice", "active/acme.alice", "ratelimit/acme.alice", "ratelimit/acme.alice.analytics", "jobs/" + alice[0], "userjobs/acme.alice." + alice[0]} {
				if !strings.Contains(strings.Join(rep.KVKeys, " "), want) {
					t.Errorf("KV keys %v lack %s", rep.KVKeys, want)
				}
			}
		}},
		{name: "no object, KV entry or stream message of alice remains", check: func(t *testing.T) {
			for _, m := range after {
				if m.subject == schemas.SubjectErasure {
					continue
				}
				if mentions(m, "acme", "alice", alice) {
					t.Errorf("left behind in %s: %s %.120s", m.stream, m.subject, m.data)
				}
			}
			objs, err := w.blobs.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				for _, id := range alice {
					if strings.Contains(o.Key, id) {
						t.Errorf("object %s remains", o.Key)
					}
				}
			}
		}},
		{name: "bob's data in the same tenant survives in full", check: func(t *testing.T) {
			if b, a := survivors("acme", "bob", bob, before), survivors("acme", "bob", bob, after); a != b || a == 0 {
				t.Fatalf("bob's messages: %d before, %d after", b, a)
			}
			for _, id := range bob {
				if _, err := w.jobs.Get(ctx, id); err != nil {
					t.Fatal(err)
				}
				for _, key := range []string{"inputs/acme/" + id + "/original.png", "work/" + id + "/input.f32", "results/acme/" + id + "/cutout.png"} {
					if _, err := w.blobs.Stat(ctx, key); err != nil {
						t.Fatalf("%s: %v", key, err)
					}
				}
			}
			if _, err := w.keys.Authenticate(ctx, w.apiKeys["acme/bob"]); err != nil {
				t.Fatal(err)
			}
			if _, _, err := w.issuer.Verify(ctx, w.sessions["acme/bob"].AccessToken); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "the other tenant's alice is a different person and survives", check: func(t *testing.T) {
			if b, a := survivors("globex", "alice", otherAlice, before), survivors("globex", "alice", otherAlice, after); a != b || a == 0 {
				t.Fatalf("globex/alice's messages: %d before, %d after", b, a)
			}
			if _, err := w.users.Get(ctx, "globex", "alice"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "alice's credentials stop working", check: func(t *testing.T) {
			if _, _, err := w.issuer.Verify(ctx, w.sessions["acme/alice"].AccessToken); !errors.Is(err, auth.ErrTokenRevoked) {
				t.Fatalf("access token: %v", err)
			}
			if _, err := w.issuer.Refresh(ctx, w.sessions["acme/alice"].RefreshToken); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("refresh token: %v", err)
			}
			if _, err := w.keys.Authenticate(ctx, w.apiKeys["acme/alice"]); !errors.Is(err, auth.ErrInvalidKey) {
				t.Fatalf("API key: %v", err)
			}
		}},
		{name: "the erasure request stays on record for the sink", check: func(t *testing.T) {
			var found []schemas.ErasureRequest
			for _, m := range after {
				if m.subject == schemas.SubjectErasure {
					var r schemas.ErasureRequest
					if err := json.Unmarshal(m.data, &r); err != nil {
						t.Fatal(err)
					}
					found = append(found, r)
				}
			}
			if len(found) != 1 || found[0].Validate() != nil || found[0].User != "alice" || found[0].Tenant != "acme" || found[0].RequestedBy != "operator" || found[0].ID != rep.RequestID {
				t.Fatalf("erasure requests %+v", found)
			}
		}},
		{name: "erasing again finds nothing more and keeps the first record", check: func(t *testing.T) {
			again, err := eraser.Erase(ctx, "acme", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if len(again.Jobs) != 0 || len(again.Objects) != 0 || len(again.KVKeys) != 0 || len(again.Messages) != 0 {
				t.Fatalf("second erasure removed more: %+v", again)
			}
			n := 0
			for _, m := range w.everyMessage() {
				if m.subject == schemas.SubjectErasure {
					n++
				}
			}
			if n != 2 {
				t.Fatalf("%d erasure records, want 2", n)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.check)
	}
}
