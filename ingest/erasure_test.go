package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/blob/s3"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/store"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// The user whose footprint is erased. The id is distinctive so that finding it in a
// byte string means it is this user's.
const (
	footTenant = "acme"
	footUser   = "alice-7f3e9"
)

// failThreshold marks a job that the pipeline fails (a permanent preprocess error).
const failThreshold = 0.75

// backend opens the object storage a footprint test runs on.
type backend struct {
	name string
	open func(t *testing.T, s *streamstest.Server) blob.Store
}

var footprintBackends = []backend{
	{"jetstream", func(t *testing.T, s *streamstest.Server) blob.Store {
		st, err := natsobj.Open(context.Background(), s.JS, natsobj.Bucket)
		require.NoError(t, err)
		return st
	}},
	{"s3", func(t *testing.T, _ *streamstest.Server) blob.Store {
		endpoint := os.Getenv("STUDIO_TEST_S3_ENDPOINT")
		if endpoint == "" {
			if os.Getenv("STUDIO_REQUIRE_S3") == "1" {
				t.Fatal("STUDIO_REQUIRE_S3=1 but STUDIO_TEST_S3_ENDPOINT is not set: start MinIO with scripts/minio.sh")
			}
			t.Skip("STUDIO_TEST_S3_ENDPOINT is not set: no S3 server to erase from (scripts/minio.sh starts one)")
		}
		st, err := s3.New(context.Background(), s3.Config{
			Endpoint: endpoint, Bucket: "studio-erasure-" + strings.ToLower(rand.Text()[:12]),
			AccessKey: os.Getenv("STUDIO_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("STUDIO_TEST_S3_SECRET_KEY"),
			CreateBucket: true,
		})
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			keys, _ := st.Keys(ctx, "")
			for _, k := range keys {
				_ = st.Purge(ctx, k)
			}
		})
		return st
	}},
}

// fakeWork is the pixel work of one stage, left out: preprocess writes a scratch
// tensor, postprocess the three scratch results, and a job asking for failThreshold
// fails permanently. The real handler, runner and store stage run around it.
type fakeWork struct {
	stage schemas.Stage
	blobs blob.Store
	png   []byte // what postprocess "renders"
}

func (f *fakeWork) Stage() schemas.Stage { return f.stage }

func (f *fakeWork) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	errs := make([]error, len(batch))
	for i, ev := range batch {
		errs[i] = f.one(ctx, ev)
	}
	return errs
}

func (f *fakeWork) one(ctx context.Context, ev *schemas.JobEvent) error {
	put := func(name string, data []byte) error {
		key := "work/" + ev.JobID + "/" + name
		info, err := f.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "image/png")
		if err != nil {
			return err
		}
		if ev.Artifacts == nil {
			ev.Artifacts = map[string]schemas.ObjectRef{}
		}
		ev.Artifacts[strings.TrimSuffix(name, ".png")] = schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: "image/png", Width: 4, Height: 4}
		return nil
	}
	switch f.stage {
	case schemas.StagePreprocess:
		if th, ok := ev.Params["threshold"].(float64); ok && th == failThreshold {
			return processors.Permanent(f.stage, "bad_input", "this test fails jobs with threshold %v", failThreshold)
		}
		return put("input.f32", []byte("tensor"))
	case schemas.StagePostprocess:
		for _, name := range []string{"cutout.png", "mask.png", "thumbnail.png"} {
			if err := put(name, f.png); err != nil {
				return err
			}
		}
	}
	return nil
}

// footprintEnv is the whole product around one embedded server: ingest with
// authentication, idempotency, job index, webhooks and the result cache on, the NATS
// entry, and the four stages (fakeWork, then the real store stage). The object store
// is wrapped for metrics, as `studio up` wires it.
type footprintEnv struct {
	srv    *streamstest.Server
	blobs  blob.Store
	jobs   *jobs.Store
	api    *httptest.Server
	sec    *ingest.Security
	tokens map[string]string
}

func newFootprintEnv(t *testing.T, b backend) *footprintEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := streamstest.Start(t)
	blobs := metrics.New().InstrumentBlobs(b.open(t, s), b.name)
	jobStore, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	// An arbitrary-style model: its jobs carry a style image as well.
	require.NoError(t, cat.Add(models.Spec{Manifest: models.Manifest{Name: "isnet", Version: "arbitrary", Task: schemas.TaskStyleTransfer,
		Style: &models.Tensor{Name: "style", Shape: []int64{1, 3, -1, -1}, Resize: "none"}}, Path: "/nonexistent"}))
	idem, err := jobs.OpenIdempotency(ctx, s.JS)
	require.NoError(t, err)
	index, err := jobs.OpenIndex(ctx, s.JS)
	require.NoError(t, err)
	cache, err := jobs.OpenCache(ctx, s.JS)
	require.NoError(t, err)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := &app.Config{DataDir: t.TempDir(), Auth: "on",
		JWT:   auth.Config{JWTKeys: "k1:HS256:" + base64.RawURLEncoding.EncodeToString(secret), AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour},
		Quota: quota.Policy{Default: quota.Limits{MaxActive: 50, RequestsPerHour: 1000}}}
	sec, err := app.NewSecurity(ctx, cfg, app.Deps{Bus: &app.Bus{NC: s.NC, JS: s.JS}, Blobs: blobs})
	require.NoError(t, err)
	pub := streams.JSPublisher{JS: s.JS}
	svc := ingest.NewService(ingest.Config{WebhookSecret: "whsec-test", AllowPrivateCallbacks: true}, jobStore, blobs, pub, cat,
		func(context.Context, schemas.Tier) (int, error) { return 0, nil }, nil, quietLog(),
		ingest.WithIdempotency(idem), ingest.WithJobIndex(index), ingest.WithSecurity(sec))
	svc.UseCache(cache)
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	t.Cleanup(svc.Close)

	natsDone := make(chan error, 1)
	go func() { natsDone <- svc.ServeNATS(ctx, streams.RequestServer{NC: s.NC}) }()
	streamsEventually(t, func() bool {
		_, err := s.NC.Request("$SRV.PING.studio-ingest", nil, 200*time.Millisecond)
		return err == nil
	}, "the NATS entry did not start")

	runners := make(chan struct{}, len(processors.StageNames()))
	for _, st := range processors.StageNames() {
		model := ""
		if st == schemas.StageInference {
			model = "isnet"
		}
		cs, err := processors.Consumers(st, model)
		require.NoError(t, err)
		var step processors.Step = &fakeWork{stage: st, blobs: blobs, png: encodePNG(t, gridImage(4, 4))}
		if st == schemas.StageStore {
			step = &store.Step{Blobs: blobs, Cache: cache}
		}
		h := processors.NewHandler(step, jobStore, pub, "test-"+string(st), quietLog())
		r, err := streams.NewRunner(ctx, s.NC, s.JS, h, streams.RunnerConfig{
			Stage: st, Worker: "test", Spec: cs, Concurrency: 1, DrainTimeout: 5 * time.Second,
			OnFailure: h.Fail, Log: quietLog(), PullExpiry: time.Second,
		})
		require.NoError(t, err)
		go func() {
			defer func() { runners <- struct{}{} }()
			_ = r.Run(ctx)
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range processors.StageNames() {
			<-runners
		}
		<-natsDone
	})

	e := &footprintEnv{srv: s, blobs: blobs, jobs: jobStore, api: api, sec: sec, tokens: map[string]string{}}
	for _, u := range []auth.User{
		{Tenant: footTenant, ID: "root", Tier: schemas.TierNormal, Scopes: []auth.Scope{auth.ScopeAdmin}},
		{Tenant: footTenant, ID: footUser, Tier: schemas.TierNormal, Scopes: auth.UserScopes},
		{Tenant: footTenant, ID: "bob", Tier: schemas.TierNormal, Scopes: auth.UserScopes},
	} {
		require.NoError(t, sec.Users.Create(ctx, &u))
	}
	for _, id := range []string{"root", "bob"} {
		pair, err := sec.Issuer.Issue(ctx, footTenant, id)
		require.NoError(t, err)
		e.tokens[id] = pair.AccessToken
	}
	return e
}

// do sends one request and decodes a JSON answer into out (when not nil), requiring
// status want.
func (e *footprintEnv) do(t *testing.T, method, path, bearer string, body []byte, contentType string, hdr http.Header, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := e.api.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	require.Equal(t, want, res.StatusCode, "%s %s: %s", method, path, data)
	if out != nil {
		require.NoError(t, json.Unmarshal(data, out), "%s %s: %s", method, path, data)
	}
}

func (e *footprintEnv) submitJSON(t *testing.T, bearer string, body map[string]any) string {
	t.Helper()
	var job struct{ ID string }
	e.do(t, http.MethodPost, "/v2/jobs", bearer, jsonBody(t, body), "application/json", nil, http.StatusAccepted, &job)
	return job.ID
}

func (e *footprintEnv) waitStatus(t *testing.T, id string, want schemas.Status) *schemas.JobRecord {
	t.Helper()
	var rec *schemas.JobRecord
	streamsEventually(t, func() bool {
		var err error
		rec, err = e.jobs.Get(context.Background(), id)
		return err == nil && rec.Status == want
	}, "job %s did not become %s", id, want)
	return rec
}

// footprint is what one user left on the server.
type footprint struct {
	jobs      []string
	uploadKey string
	// styleKey is the presigned upload a style-transfer job took its style image from.
	styleKey string
}

// createFootprint leaves data of footUser through every entry point: login and
// refresh, an API key, an HTTP submission with an Idempotency-Key and a callback URL
// (replayed once), a NATS submission, a presigned upload submitted by key, jobs that
// succeed and one that fails, a cache hit, feedback and a download.
func (e *footprintEnv) createFootprint(t *testing.T) footprint {
	t.Helper()
	var fp footprint
	var pair auth.TokenPair
	e.do(t, http.MethodPost, "/v1/auth/login", e.tokens["root"], jsonBody(t, map[string]any{"tenant": footTenant, "user": footUser}), "application/json", nil, http.StatusOK, &pair)
	e.do(t, http.MethodPost, "/v1/auth/refresh", "", jsonBody(t, map[string]any{"refresh_token": pair.RefreshToken}), "application/json", nil, http.StatusOK, &pair)
	session := pair.AccessToken
	var key ingest.CreatedKey
	e.do(t, http.MethodPost, "/v1/keys", session, jsonBody(t, map[string]any{"name": "ci"}), "application/json", nil, http.StatusCreated, &key)

	// HTTP, with an API key, an Idempotency-Key and a webhook; the replay answers the same job.
	img := encodePNG(t, gridImage(5, 5))
	body, ct := form(t, file(img), field("task", "remove-background"), field("callback_url", "http://127.0.0.1:9/hook?user="+footUser))
	idem := http.Header{"Idempotency-Key": {"order-" + footUser}}
	var first, replay struct{ ID string }
	e.do(t, http.MethodPost, "/v2/jobs", key.Key, body, ct, idem, http.StatusAccepted, &first)
	e.do(t, http.MethodPost, "/v2/jobs", key.Key, body, ct, idem, http.StatusAccepted, &replay)
	require.Equal(t, first.ID, replay.ID, "the replay answers the first job")
	fp.jobs = append(fp.jobs, first.ID)

	// NATS, as an upstream system.
	nc, err := nats.Connect(e.srv.Embedded.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	res := request(t, nc, "studio.submit.remove-background", schemas.JobRequest{
		Tenant: footTenant, User: footUser, Image: &schemas.ImageInput{Data: encodePNG(t, gridImage(6, 6))},
	}, nats.Header{"Authorization": {"Bearer " + session}})
	require.Empty(t, res.Header.Get(micro.ErrorCodeHeader), "error reply: %s", res.Data)
	var reply schemas.SubmitReply
	require.NoError(t, json.Unmarshal(res.Data, &reply))
	fp.jobs = append(fp.jobs, reply.JobID)

	// A presigned upload with EXIF metadata, submitted by key.
	var ticket ingest.UploadTicket
	e.do(t, http.MethodPost, "/v1/uploads", session, nil, "", nil, http.StatusCreated, &ticket)
	fp.uploadKey = ticket.Key
	e.do(t, http.MethodPut, ticket.UploadURL, "", withEXIF(encodeJPEG(t, photoImage(32, 24)), "GPS 51.5007N 0.1246W"), "application/octet-stream", nil, http.StatusCreated, nil)
	fp.jobs = append(fp.jobs, e.submitJSON(t, session, map[string]any{"task": "remove-background", "image": map[string]any{"key": ticket.Key}}))

	// A style-transfer job with a style image from a presigned upload: the stored
	// style image and the upload are part of the footprint.
	var styleTicket ingest.UploadTicket
	e.do(t, http.MethodPost, "/v1/uploads", session, nil, "", nil, http.StatusCreated, &styleTicket)
	fp.styleKey = styleTicket.Key
	e.do(t, http.MethodPut, styleTicket.UploadURL, "", encodePNG(t, gridImage(8, 8)), "application/octet-stream", nil, http.StatusCreated, nil)
	styled := e.submitJSON(t, session, map[string]any{"task": "style-transfer", "model": "isnet", "version": "arbitrary",
		"image": map[string]any{"data": encodePNG(t, gridImage(5, 6))}, "style": map[string]any{"key": styleTicket.Key}})
	styledRec, err := e.jobs.Get(context.Background(), styled)
	require.NoError(t, err)
	require.NotNil(t, styledRec.Style, "the job records its stored style image")
	_, err = e.blobs.Stat(context.Background(), styledRec.Style.Key)
	require.NoError(t, err, "the style image is stored with the job")

	// A job the pipeline fails.
	failed := e.submitJSON(t, session, map[string]any{"task": "remove-background", "image": map[string]any{"data": encodePNG(t, gridImage(7, 7))}, "params": map[string]any{"threshold": failThreshold}})
	fp.jobs = append(fp.jobs, failed)

	for _, id := range fp.jobs[:3] {
		e.waitStatus(t, id, schemas.StatusSucceeded)
	}
	e.waitStatus(t, failed, schemas.StatusFailed)
	streamsEventually(t, func() bool {
		rec, err := e.jobs.Get(context.Background(), styled)
		return err == nil && rec.Status.Final()
	}, "the style-transfer job %s did not end", styled)
	fp.jobs = append(fp.jobs, styled)

	// A chained job: every step's outputs, its step events and each step's requests.
	chained := e.submitJSON(t, session, map[string]any{"image": map[string]any{"data": encodePNG(t, gridImage(8, 8))},
		"steps": []map[string]any{{"task": "remove-background"}, {"task": "remove-background", "params": map[string]any{"feather": 1}}}})
	chainRec := e.waitStatus(t, chained, schemas.StatusSucceeded)
	require.Contains(t, chainRec.Results, "step1.remove-background.cutout", "both steps' outputs are kept")
	require.Contains(t, chainRec.Results, "step0.remove-background.cutout", "both steps' outputs are kept")
	fp.jobs = append(fp.jobs, chained)

	// The first image again: served from the cache.
	body, ct = form(t, file(img), field("task", "remove-background"))
	var hit struct{ ID string }
	e.do(t, http.MethodPost, "/v2/jobs", session, body, ct, nil, http.StatusAccepted, &hit)
	rec, err := e.jobs.Get(context.Background(), hit.ID)
	require.NoError(t, err)
	require.True(t, rec.CacheHit, "the repeated request is a cache hit: %+v", rec)
	fp.jobs = append(fp.jobs, hit.ID)

	e.do(t, http.MethodPost, "/v1/feedback", session, jsonBody(t, map[string]any{"job_id": first.ID, "rating": "up", "comment": "great, " + footUser}), "application/json", nil, http.StatusAccepted, nil)
	e.do(t, http.MethodGet, "/v1/jobs/"+first.ID+"/results/cutout", session, nil, "", nil, http.StatusOK, nil)
	var list struct {
		Items []struct{ ID string } `json:"items"`
	}
	e.do(t, http.MethodGet, "/v2/jobs", session, nil, "", nil, http.StatusOK, &list)
	require.Len(t, list.Items, len(fp.jobs), "the job index lists every job of the user")
	return fp
}

// withEXIF inserts an APP1 Exif segment carrying text right after the JPEG's SOI.
func withEXIF(jpg []byte, text string) []byte {
	payload := append([]byte("Exif\x00\x00"), text...)
	seg := []byte{0xFF, 0xE1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	out := append([]byte{}, jpg[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

func TestEraseLeavesNothingOfAUsersFullFootprint(t *testing.T) {
	for _, b := range footprintBackends {
		t.Run("on "+b.name, func(t *testing.T) {
			ctx := context.Background()
			e := newFootprintEnv(t, b)
			fp := e.createFootprint(t)
			up, _, err := e.blobs.Get(ctx, fp.uploadKey)
			require.NoError(t, err)
			stored, _ := io.ReadAll(up)
			up.Close()
			require.NotContains(t, string(stored), "GPS", "the upload is stored without its metadata")

			bobJob := e.submitJSON(t, e.tokens["bob"], map[string]any{"task": "remove-background", "image": map[string]any{"data": encodePNG(t, gridImage(9, 9))}})
			bobRec := e.waitStatus(t, bobJob, schemas.StatusSucceeded)

			needles := append([]string{footUser, fp.uploadKey, fp.uploadKey[strings.LastIndexByte(fp.uploadKey, '/')+1:],
				fp.styleKey, fp.styleKey[strings.LastIndexByte(fp.styleKey, '/')+1:]}, fp.jobs...)
			find := func(haystack string) string {
				h := strings.ToLower(haystack)
				for _, n := range needles {
					if strings.Contains(h, strings.ToLower(n)) {
						return n
					}
				}
				return ""
			}

			// The footprint is real: before the erasure, the user is in every place that
			// the entry points write to.
			held := map[string]bool{}
			for _, m := range everyStoredMessage(t, e.srv.JS) {
				if find(m.text) != "" {
					held[m.stream] = true
				}
			}
			want := []string{"REQUESTS", "RESULTS", "STEPS", "TELEMETRY", "AUDIT", "FEEDBACK", "DLQ", "KV_users", "KV_refresh", "KV_apikeys",
				"KV_jobs", "KV_userjobs", "KV_idempotency", "KV_cache", "KV_active", "KV_ratelimit"}
			if b.name == "jetstream" {
				want = append(want, "OBJ_"+natsobj.Bucket)
			}
			for _, stream := range want {
				require.True(t, held[stream], "the footprint left nothing in %s (found in %v)", stream, held)
			}

			var rep erasure.ErasureReport
			e.do(t, http.MethodDelete, "/v1/users/"+footUser+"/data", e.tokens["root"], nil, "", nil, http.StatusOK, &rep)
			require.Empty(t, rep.InFlight)
			require.ElementsMatch(t, fp.jobs, rep.Jobs)

			t.Run("no stream message names the user, a job or the upload but the erasure record", func(t *testing.T) {
				records := 0
				for _, m := range everyStoredMessage(t, e.srv.JS) {
					n := find(m.text)
					if n == "" {
						continue
					}
					if m.subject == schemas.SubjectErasure {
						records++
						continue
					}
					t.Errorf("%s: %s still names %q: %.200s", m.stream, m.subject, n, m.text)
				}
				require.Equal(t, 1, records, "one erasure record")
			})
			t.Run("no object names them or holds them", func(t *testing.T) {
				keys, err := e.blobs.Keys(ctx, "")
				require.NoError(t, err)
				for _, k := range keys {
					if n := find(k); n != "" {
						t.Errorf("object %s names %q", k, n)
						continue
					}
					rc, _, err := e.blobs.Get(ctx, k)
					if errors.Is(err, blob.ErrNotFound) {
						continue
					}
					require.NoError(t, err)
					data, _ := io.ReadAll(rc)
					rc.Close()
					if n := find(string(data)); n != "" {
						t.Errorf("object %s holds %q", k, n)
					}
				}
			})
			t.Run("another user's job of the tenant survives", func(t *testing.T) {
				_, err := e.jobs.Get(ctx, bobJob)
				require.NoError(t, err)
				for _, ref := range bobRec.Results {
					_, err := e.blobs.Stat(ctx, ref.Key)
					require.NoError(t, err, ref.Key)
				}
			})
		})
	}
}

// storedMessage is one message of any stream on the server, as text: subject, headers
// and body.
type storedMessage struct {
	stream, subject, text string
}

// everyStoredMessage reads every message of every stream on the server: the pipeline's,
// every KV bucket's and every object store's.
func everyStoredMessage(t *testing.T, js jetstream.JetStream) []storedMessage {
	t.Helper()
	ctx := context.Background()
	var out []storedMessage
	lister := js.ListStreams(ctx)
	for info := range lister.Info() {
		st, err := js.Stream(ctx, info.Config.Name)
		require.NoError(t, err)
		if info.State.Msgs == 0 {
			continue
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			require.NoError(t, err)
			out = append(out, storedMessage{stream: info.Config.Name, subject: m.Subject, text: fmt.Sprintf("%s %v %s", m.Subject, m.Header, m.Data)})
		}
	}
	require.NoError(t, lister.Err())
	return out
}

func TestNATSEntryRefusesUserIdsThatCouldNeverBeErased(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	e.serveNATS(t)
	nc := e.upstream(t)
	img := encodePNG(t, gridImage(3, 3))
	for _, tc := range []struct{ name, user string }{
		{"a dot, which splits KV keys and subjects", "alice.smith"},
		{"a space", "alice smith"},
		{"a wildcard", "alice>"},
		{"non-ASCII letters", "zoë"},
		{"65 bytes", strings.Repeat("a", 65)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := request(t, nc, "studio.submit.remove-background", schemas.JobRequest{
				Tenant: "acme", User: tc.user, Image: &schemas.ImageInput{Data: img},
			}, nil)
			require.Equal(t, "422", res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
			require.Contains(t, string(res.Data), "invalid_user")
		})
	}
	e.requireNothingKept(t)
}

func TestAnAPIKeyCannotEraseItsOwnerButTheOwnersSessionCan(t *testing.T) {
	e := newSecureEnv(t)
	ctx := context.Background()
	r := e.call(t, http.MethodPost, "/v1/keys", e.tokens["bob"], jsonBody(t, map[string]any{"name": "reader", "scopes": []string{"jobs:read"}}), "application/json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var key ingest.CreatedKey
	require.NoError(t, json.Unmarshal(r.body, &key))

	r = e.call(t, http.MethodDelete, "/v1/users/bob/data", key.Key, nil, "")
	require.Equal(t, http.StatusForbidden, r.status, string(r.body))
	_, err := e.sec.Users.Get(ctx, "tb", "bob")
	require.NoError(t, err, "the refused erasure removed nothing")

	r = e.call(t, http.MethodDelete, "/v1/users/bob/data", e.tokens["bob"], nil, "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	_, err = e.sec.Users.Get(ctx, "tb", "bob")
	require.ErrorIs(t, err, auth.ErrUserNotFound)
}
