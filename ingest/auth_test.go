package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// secureEnv is ingest with authentication on, wired by app.NewSecurity on an embedded
// JetStream server. Users: alice (tenant ta, admin), bob (tenant tb), carol (tenant ta,
// free tier, 2 requests per hour).
type secureEnv struct {
	api     *httptest.Server
	svc     *ingest.Service
	jobs    *jobs.Store
	sec     *ingest.Security
	srv     *streamstest.Server
	keySpec string
	tokens  map[string]string
	// upstream is a client connection of its own for the NATS entry (newAdmissionEnv).
	upstream *nats.Conn
	// replica starts another ingest replica on the same server, stores and security,
	// as a second process would run it, and returns its HTTP server.
	replica func(t *testing.T) *httptest.Server
}

// newSecureEnv starts the service; each setup runs on it before its handler is built
// (MountPages, for one).
func newSecureEnv(t *testing.T, setup ...func(*ingest.Service)) *secureEnv {
	t.Helper()
	return newSecureEnvWith(t, ingest.Config{}, setup...)
}

// newSecureEnvWith is newSecureEnv with the service's configuration.
func newSecureEnvWith(t *testing.T, conf ingest.Config, setup ...func(*ingest.Service)) *secureEnv {
	t.Helper()
	return newSecureEnvOpts(t, conf, nil, nil, setup...)
}

// newSecureEnvOpts is newSecureEnvWith that also adjusts the app configuration
// app.NewSecurity reads (appSet, may be nil) and adds service options made on the
// server (opts, may be nil).
func newSecureEnvOpts(t *testing.T, conf ingest.Config, appSet func(*app.Config), opts func(*streamstest.Server) []ingest.Option, setup ...func(*ingest.Service)) *secureEnv {
	t.Helper()
	ctx := context.Background()
	s := streamstest.Start(t)
	jobStore, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	idem, err := jobs.OpenIdempotency(ctx, s.JS)
	require.NoError(t, err)
	index, err := jobs.OpenIndex(ctx, s.JS)
	require.NoError(t, err)

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	spec := "k1:HS256:" + base64.RawURLEncoding.EncodeToString(secret)
	// Tenant ta's admins (alice) operate the service: the operations analytics and
	// rollouts are theirs.
	cfg := &app.Config{DataDir: t.TempDir(), Auth: "on", OperatorTenant: "ta",
		JWT: auth.Config{JWTKeys: spec, AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour},
		Quota: quota.Policy{Default: quota.Limits{MaxActive: 3},
			Tiers: map[schemas.Tier]quota.Limits{schemas.TierFree: {RequestsPerHour: 2}}}}
	if appSet != nil {
		appSet(cfg)
	}
	sec, err := app.NewSecurity(ctx, cfg, app.Deps{Bus: &app.Bus{NC: s.NC, JS: s.JS}, Blobs: blobs})
	require.NoError(t, err)
	options := []ingest.Option{ingest.WithIdempotency(idem), ingest.WithJobIndex(index), ingest.WithSecurity(sec)}
	if opts != nil {
		options = append(options, opts(s)...)
	}
	newService := func() *ingest.Service {
		return ingest.NewService(conf, jobStore, blobs, streams.JSPublisher{JS: s.JS}, cat,
			func(context.Context, schemas.Tier) (int, error) { return 0, nil }, nil, quietLog(), options...)
	}
	svc := newService()
	for _, f := range setup {
		f(svc)
	}
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	t.Cleanup(svc.Close)

	e := &secureEnv{api: api, svc: svc, jobs: jobStore, sec: sec, srv: s, keySpec: spec, tokens: map[string]string{}}
	e.replica = func(t *testing.T) *httptest.Server {
		svc := newService()
		api := httptest.NewServer(svc.Handler())
		t.Cleanup(api.Close)
		t.Cleanup(svc.Close)
		return api
	}
	for _, u := range []auth.User{
		{Tenant: "ta", ID: "alice", Tier: schemas.TierPremium, Scopes: []auth.Scope{auth.ScopeAdmin}},
		{Tenant: "tb", ID: "bob", Tier: schemas.TierNormal, Scopes: auth.UserScopes},
		{Tenant: "ta", ID: "carol", Tier: schemas.TierFree, Scopes: auth.UserScopes},
	} {
		require.NoError(t, sec.Users.Create(ctx, &u))
		pair, err := sec.Issuer.Issue(ctx, u.Tenant, u.ID)
		require.NoError(t, err)
		e.tokens[u.ID] = pair.AccessToken
	}
	return e
}

type authResponse struct {
	status int
	header http.Header
	body   []byte
}

func (e *secureEnv) call(t *testing.T, method, path, bearer string, body []byte, contentType string) authResponse {
	t.Helper()
	req, err := http.NewRequest(method, e.api.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
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
	return authResponse{status: res.StatusCode, header: res.Header, body: data}
}

func (e *secureEnv) submitAs(t *testing.T, bearer string) authResponse {
	t.Helper()
	body, ct := form(t, file(encodePNG(t, gridImage(8, 8))), field("task", "remove-background"), field("tier", "premium"))
	return e.call(t, http.MethodPost, "/v2/jobs", bearer, body, ct)
}

func jobID(t *testing.T, r authResponse) string {
	t.Helper()
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	var j struct {
		ID   string       `json:"id"`
		Tier schemas.Tier `json:"tier"`
	}
	require.NoError(t, json.Unmarshal(r.body, &j))
	return j.ID
}

func TestEveryRouteButHealthAndDocsNeedsCredentials(t *testing.T) {
	e := newSecureEnv(t)
	for _, rt := range [][2]string{
		{"GET", "/v1/jobs"}, {"GET", "/v2/jobs"}, {"POST", "/v1/jobs"}, {"POST", "/v2/jobs"}, {"GET", "/v2/jobs/01J0000000000000000000000"},
		{"DELETE", "/v2/jobs/x"}, {"GET", "/v1/jobs/x/events"}, {"GET", "/v1/jobs/x/input"}, {"GET", "/v1/jobs/x/results/cutout"},
		{"POST", "/v1/uploads"}, {"POST", "/v1/feedback"}, {"GET", "/v1/models"}, {"GET", "/v1/tasks"}, {"GET", "/latest/jobs"},
		{"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"DELETE", "/v1/keys/x"}, {"GET", "/v1/users"}, {"POST", "/v1/users"},
		{"PUT", "/v1/users/x/tier"}, {"DELETE", "/v1/users/x"}, {"DELETE", "/v1/users/x/data"}, {"POST", "/v1/auth/logout"},
		{"POST", "/v1/predict"}, {"POST", "/v2/predict"}, {"POST", "/latest/predict"}, {"POST", "/v2/batches"},
		{"GET", "/v2/batches/x"}, {"DELETE", "/v2/batches/x"}, {"GET", "/v2/batches/x/results"},
	} {
		r := e.call(t, rt[0], rt[1], "", nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status, "%s %s", rt[0], rt[1])
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	}
	for _, path := range []string{"/health/live", "/health", "/health/ready", "/docs", "/docs/problems", "/openapi.json"} {
		r := e.call(t, "GET", path, "", nil, "")
		require.NotEqual(t, http.StatusUnauthorized, r.status, path)
	}
}

// issuer mints tokens with keys from spec and a clock shifted by skew.
func (e *secureEnv) issuer(t *testing.T, spec string, skew time.Duration) *auth.Issuer {
	t.Helper()
	keys, err := auth.ParseKeySet(spec)
	require.NoError(t, err)
	tokens, err := auth.OpenTokens(context.Background(), e.srv.JS)
	require.NoError(t, err)
	iss, err := auth.NewIssuer(keys, tokens, e.sec.Users, auth.WithClock(func() time.Time { return time.Now().Add(skew) }))
	require.NoError(t, err)
	return iss
}

func TestBadTokensAreRefused(t *testing.T) {
	e := newSecureEnv(t)
	ctx := context.Background()
	expired, err := e.issuer(t, e.keySpec, -2*time.Hour).Issue(ctx, "ta", "alice")
	require.NoError(t, err)
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	forged, err := e.issuer(t, "k1:HS256:"+base64.RawURLEncoding.EncodeToString(other), 0).Issue(ctx, "ta", "alice")
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, e.call(t, "GET", "/v2/jobs", e.tokens["alice"], nil, "").status, "a valid token works")
	for name, tok := range map[string]string{
		"expired": expired.AccessToken, "wrongly signed": forged.AccessToken, "malformed": "not-a-jwt",
		"a refresh token": expired.RefreshToken, "an unknown API key": "csk_aaaaaaaaaaaaaaaa_bbbbbbbb",
	} {
		r := e.call(t, "GET", "/v2/jobs", tok, nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status, name)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "invalid_token", name)
	}

	// Logging out ends the session at once.
	pair, err := e.sec.Issuer.Issue(ctx, "tb", "bob")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, e.call(t, "POST", "/v1/auth/logout", pair.AccessToken, []byte(`{}`), "application/json").status)
	require.Equal(t, http.StatusUnauthorized, e.call(t, "GET", "/v2/jobs", pair.AccessToken, nil, "").status)
}

func TestAnAPIKeyWorksUntilRevoked(t *testing.T) {
	e := newSecureEnv(t)
	r := e.call(t, "POST", "/v1/keys", e.tokens["carol"], []byte(`{"name":"ci"}`), "application/json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	var k struct {
		Key string `json:"key"`
		ID  string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(r.body, &k))
	require.True(t, auth.IsAPIKey(k.Key))

	require.Equal(t, http.StatusOK, e.call(t, "GET", "/v2/jobs", k.Key, nil, "").status)
	require.Equal(t, http.StatusNotFound, e.call(t, "DELETE", "/v1/keys/"+k.ID, e.tokens["bob"], nil, "").status, "another tenant cannot revoke it")
	require.Equal(t, http.StatusNoContent, e.call(t, "DELETE", "/v1/keys/"+k.ID, e.tokens["carol"], nil, "").status)
	require.Equal(t, http.StatusUnauthorized, e.call(t, "GET", "/v2/jobs", k.Key, nil, "").status)
}

func TestAnotherTenantsJobIsNotFound(t *testing.T) {
	e := newSecureEnv(t)
	id := jobID(t, e.submitAs(t, e.tokens["bob"]))
	rec, err := e.sec.Active.Active(context.Background(), "tb", "bob")
	require.NoError(t, err)
	require.Equal(t, []string{id}, rec, "the job holds one of bob's slots")

	for _, rt := range [][2]string{
		{"GET", "/v2/jobs/" + id}, {"GET", "/v1/jobs/" + id}, {"GET", "/v1/jobs/" + id + "/events"},
		{"GET", "/v1/jobs/" + id + "/input"}, {"GET", "/v1/jobs/" + id + "/results/cutout"}, {"DELETE", "/v2/jobs/" + id},
	} {
		r := e.call(t, rt[0], rt[1], e.tokens["alice"], nil, "")
		require.Equal(t, http.StatusNotFound, r.status, "%s %s", rt[0], rt[1])
		require.Contains(t, string(r.body), "job_not_found")
	}
	r := e.call(t, "GET", "/v2/jobs", e.tokens["alice"], nil, "")
	require.NotContains(t, string(r.body), id)

	// The owner sees it, downloads its input and cancels it, which frees the slot.
	require.Equal(t, http.StatusOK, e.call(t, "GET", "/v2/jobs/"+id, e.tokens["bob"], nil, "").status)
	require.Equal(t, http.StatusOK, e.call(t, "GET", "/v1/jobs/"+id+"/input", e.tokens["bob"], nil, "").status)
	require.Equal(t, http.StatusOK, e.call(t, "DELETE", "/v2/jobs/"+id, e.tokens["bob"], nil, "").status)
	left, err := e.sec.Active.Active(context.Background(), "tb", "bob")
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestTheTierComesFromTheUserRecord(t *testing.T) {
	e := newSecureEnv(t)
	r := e.submitAs(t, e.tokens["bob"]) // asks for premium; bob is normal
	jobID(t, r)
	require.Contains(t, string(r.body), `"tier": "normal"`)
}

func TestTheFourthConcurrentJobIsRefused(t *testing.T) {
	e := newSecureEnv(t)
	for range 3 {
		jobID(t, e.submitAs(t, e.tokens["bob"]))
	}
	r := e.submitAs(t, e.tokens["bob"])
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.Contains(t, string(r.body), "too_many_active_jobs")
	require.Contains(t, string(r.body), "3 jobs are already queued or running")
	jobID(t, e.submitAs(t, e.tokens["alice"])) // other users are not affected
}

func TestTheRateLimitAnswers429WithRetryAfter(t *testing.T) {
	e := newSecureEnv(t)
	jobID(t, e.submitAs(t, e.tokens["carol"]))
	jobID(t, e.submitAs(t, e.tokens["carol"]))
	r := e.submitAs(t, e.tokens["carol"])
	require.Equal(t, http.StatusTooManyRequests, r.status, string(r.body))
	require.Contains(t, string(r.body), "rate_limited")
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

func TestAdminsManageUsersAndErasure(t *testing.T) {
	e := newSecureEnv(t)
	require.Equal(t, http.StatusForbidden, e.call(t, "GET", "/v1/users", e.tokens["carol"], nil, "").status)
	r := e.call(t, "POST", "/v1/users", e.tokens["alice"], []byte(`{"id":"dave","tier":"free"}`), "application/json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	r = e.call(t, "PUT", "/v1/users/dave/tier", e.tokens["alice"], []byte(`{"tier":"premium"}`), "application/json")
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	// An admin issues tokens for a user of their tenant only.
	r = e.call(t, "POST", "/v1/auth/login", e.tokens["alice"], []byte(`{"tenant":"ta","user":"dave"}`), "application/json")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Equal(t, http.StatusUnauthorized, e.call(t, "POST", "/v1/auth/login", "", []byte(`{"tenant":"ta","user":"dave"}`), "application/json").status)
	require.Equal(t, http.StatusForbidden, e.call(t, "POST", "/v1/auth/login", e.tokens["bob"], []byte(`{"tenant":"ta","user":"dave"}`), "application/json").status)

	id := jobID(t, e.submitAs(t, e.tokens["carol"]))
	r = e.call(t, "DELETE", "/v1/users/carol/data", e.tokens["alice"], nil, "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), id)
	require.Equal(t, http.StatusNoContent, e.call(t, "DELETE", "/v1/users/dave", e.tokens["alice"], nil, "").status)
}
