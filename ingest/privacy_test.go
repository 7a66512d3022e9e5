package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/ingest/studio"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

// jobRoute is one route that takes a job id, with what an allowed caller (the owner or
// an admin of the job's tenant) gets for a succeeded job.
type jobRoute struct {
	method, template string // the OpenAPI path; {id} is the job id
	body             string // JSON body; {id} is replaced too
	allowed          int
}

// jobRoutes is every route that reaches a job by its id. TestEveryJobRouteIsInThePrivacyTable
// fails when a route with a job id is added without a row here.
var jobRoutes = []jobRoute{
	{method: "GET", template: "/v1/jobs/{id}", allowed: http.StatusOK},
	{method: "GET", template: "/v2/jobs/{id}", allowed: http.StatusOK},
	{method: "GET", template: "/v1/jobs/{id}/events", allowed: http.StatusOK},
	{method: "GET", template: "/latest/jobs/{id}/events", allowed: http.StatusOK},
	{method: "GET", template: "/v1/jobs/{id}/input", allowed: http.StatusOK},
	{method: "GET", template: "/latest/jobs/{id}/input", allowed: http.StatusOK},
	{method: "GET", template: "/v1/jobs/{id}/results/{name}", allowed: http.StatusOK},
	{method: "GET", template: "/latest/jobs/{id}/results/{name}", allowed: http.StatusOK},
	// The job has succeeded: an allowed caller reaches it and is told it is finished.
	{method: "DELETE", template: "/v1/jobs/{id}", allowed: http.StatusConflict},
	{method: "DELETE", template: "/v2/jobs/{id}", allowed: http.StatusConflict},
	{method: "POST", template: "/v1/feedback", body: `{"job_id":"{id}","rating":"up"}`, allowed: http.StatusAccepted},
	{method: "POST", template: "/latest/feedback", body: `{"job_id":"{id}","rating":"down"}`, allowed: http.StatusAccepted},
}

// addUser creates a user and returns an access token for it.
func (e *secureEnv) addUser(t *testing.T, tenant, id string, scopes ...auth.Scope) string {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, e.sec.Users.Create(ctx, &auth.User{Tenant: tenant, ID: id, Tier: schemas.TierNormal, Scopes: scopes}))
	pair, err := e.sec.Issuer.Issue(ctx, tenant, id)
	require.NoError(t, err)
	return pair.AccessToken
}

func TestAJobIsVisibleOnlyToItsOwnerAndTheTenantsAdmins(t *testing.T) {
	e := newSecureEnv(t)
	owner := e.addUser(t, "ta", "dan", auth.UserScopes...)
	peer := e.addUser(t, "ta", "erin", auth.UserScopes...)
	foreignAdmin := e.addUser(t, "tb", "olga", auth.ScopeAdmin)
	tenantAdmin := e.tokens["alice"] // tenant ta, admin

	id := jobID(t, e.submitAs(t, owner))
	// Finish the job with a result (its input stands in for the cutout), so every route
	// has something to answer an allowed caller with.
	_, err := e.jobs.Update(context.Background(), id, func(r *schemas.JobRecord) error {
		r.Status = schemas.StatusSucceeded
		r.FinishedAt = time.Now().UTC()
		r.Results = map[string]schemas.ObjectRef{"cutout": r.Input}
		return nil
	})
	require.NoError(t, err)

	callers := []struct {
		name  string
		token string
		see   bool
	}{
		{"another user of the owner's tenant gets 404", peer, false},
		{"an admin of another tenant gets 404", foreignAdmin, false},
		{"an admin of the owner's tenant is allowed", tenantAdmin, true},
		{"the owner is allowed", owner, true},
	}
	for _, rt := range jobRoutes {
		path := strings.NewReplacer("{id}", id, "{name}", "cutout").Replace(rt.template)
		for _, c := range callers {
			t.Run(rt.method+" "+rt.template+": "+c.name, func(t *testing.T) {
				var body []byte
				ct := ""
				if rt.body != "" {
					body, ct = []byte(strings.ReplaceAll(rt.body, "{id}", id)), "application/json"
				}
				r := e.call(t, rt.method, path, c.token, body, ct)
				if !c.see {
					require.Equal(t, http.StatusNotFound, r.status, string(r.body))
					require.Contains(t, string(r.body), "job_not_found")
					require.NotContains(t, string(r.body), "dan", "the answer names no owner")
					return
				}
				require.Equal(t, rt.allowed, r.status, string(r.body))
			})
		}
	}

	// Listing shows a user's own jobs only.
	r := e.call(t, "GET", "/v2/jobs", peer, nil, "")
	require.Equal(t, http.StatusOK, r.status)
	require.NotContains(t, string(r.body), id)

	// Nothing the refused callers did changed the job.
	rec, err := e.jobs.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusSucceeded, rec.Status)
}

// TestEveryJobRouteIsInThePrivacyTable walks the served OpenAPI document: every
// operation whose path takes a job id ({id} under /jobs) and every operation that names
// a job in its body (feedback) must be a row of jobRoutes, so a new route cannot skip
// the visibility test.
func TestEveryJobRouteIsInThePrivacyTable(t *testing.T) {
	e := newSecureEnv(t)
	r := e.call(t, "GET", "/openapi.json", "", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	// namesAJob reports whether an operation's JSON request body has a job_id field.
	namesAJob := func(raw json.RawMessage) bool {
		var op struct {
			RequestBody struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		}
		if json.Unmarshal(raw, &op) != nil {
			return false
		}
		for _, c := range op.RequestBody.Content {
			name := strings.TrimPrefix(c.Schema.Ref, "#/components/schemas/")
			if _, ok := doc.Components.Schemas[name].Properties["job_id"]; ok {
				return true
			}
		}
		return false
	}

	covered := map[string]bool{}
	for _, rt := range jobRoutes {
		covered[rt.method+" "+rt.template] = true
	}
	var missing []string
	walked := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
				continue
			}
			if !strings.Contains(path, "/jobs/{id}") && !namesAJob(op) {
				continue
			}
			walked[m+" "+path] = true
			if !covered[m+" "+path] {
				missing = append(missing, m+" "+path)
			}
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "routes that take a job id but are not in jobRoutes: add a row, and reach the job through lookup")
	// The walk sees the documented rows (the /latest aliases are left out of the document).
	for _, rt := range jobRoutes {
		if !strings.HasPrefix(rt.template, "/latest/") {
			require.True(t, walked[rt.method+" "+rt.template], "%s %s is in the table but the walk did not find it", rt.method, rt.template)
		}
	}
}

func TestOperationsDataNeedsAnOperatorCredential(t *testing.T) {
	var queries atomic.Int32
	business := func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
		queries.Add(1)
		return &schemas.BusinessReport{Tenants: []schemas.TenantStats{{Tenant: "ta"}}}, nil
	}
	e := newSecureEnv(t, func(svc *ingest.Service) {
		svc.MountPages(studio.Handler(studio.Config{CacheDir: t.TempDir(), Business: business}), studio.Routes)
	})
	user := e.addUser(t, "ta", "dan", auth.UserScopes...)
	for _, path := range []string{"/ops/api/business", "/ops/api/business?window=30d", "/ops/api/anything-later"} {
		for _, tc := range []struct {
			name   string
			token  string
			status int
		}{
			{"without credentials: 401", "", http.StatusUnauthorized},
			{"with a bad token: 401", "not-a-jwt", http.StatusUnauthorized},
			{"a user without the admin scope: 403", user, http.StatusForbidden},
			{"an API key of a user: 403", "", http.StatusForbidden},
		} {
			t.Run(path+": "+tc.name, func(t *testing.T) {
				token := tc.token
				if tc.name == "an API key of a user: 403" {
					token = e.apiKey(t, "ta", "dan", auth.UserScopes...)
				}
				r := e.call(t, "GET", path, token, nil, "")
				require.Equal(t, tc.status, r.status, string(r.body))
				require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
				require.NotContains(t, string(r.body), `"tenants"`)
			})
		}
	}
	// An admin of another tenant is not an operator: the report spans every tenant.
	otherAdmin := e.addUser(t, "tb", "tbadmin", auth.ScopeAdmin)
	for _, rt := range [][2]string{{"GET", "/ops/api/business"}, {"POST", "/ops/api/sql"}, {"GET", "/v2/admin/rollouts"}, {"POST", "/v2/admin/rollouts"}} {
		r := e.call(t, rt[0], rt[1], otherAdmin, []byte(`{"sql":"SELECT 1"}`), "application/json")
		require.Equal(t, http.StatusForbidden, r.status, "%s %s by an admin of tenant tb: %s", rt[0], rt[1], r.body)
		require.Equal(t, "operator_only", problemCode(t, r.body), "%s %s", rt[0], rt[1])
		require.NotContains(t, string(r.body), `"tenants"`)
	}
	require.Zero(t, queries.Load(), "refused callers ran no analytics query")

	// An operator reads the report; the pages themselves stay public.
	r := e.call(t, "GET", "/ops/api/business", e.tokens["alice"], nil, "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"tenants"`)
	for range 5 {
		require.Equal(t, http.StatusOK, e.call(t, "GET", "/ops/api/business", e.tokens["alice"], nil, "").status)
	}
	require.EqualValues(t, 1, queries.Load(), "the report is cached: one query per window per minute")
	require.Equal(t, http.StatusOK, e.call(t, "GET", "/ops", "", nil, "").status, "the dashboard page needs no credentials")
}
