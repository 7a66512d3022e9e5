package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
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
)

// newRouteEnv is a secure env that also serves the web studio and the operations
// dashboard, so its handler has every kind of route.
func newRouteEnv(t *testing.T) *secureEnv {
	t.Helper()
	return newSecureEnv(t, func(svc *ingest.Service) {
		svc.MountPages(studio.Handler(studio.Config{CacheDir: t.TempDir()}), studio.Routes)
	})
}

// probePath fills a route pattern's parameters: {id} (a job, key, batch or user id)
// with id, the others with plausible values; a trailing "/" pattern gets a name and
// "{$}" goes.
func probePath(pattern, id string) string {
	p := strings.NewReplacer("{id}", id, "{task}", "upscale", "{name}", "cutout", "{tenant}", "ta", "{user}", "alice",
		"{schema}", "Problem", "{$}", "").Replace(pattern)
	if strings.HasSuffix(p, "/") && p != "/" {
		p += "probe"
	}
	return p
}

// TestEveryRouteDeclaresItsAccessAndTheDocumentShowsIt enumerates every route the
// handler serves (huma operations, their /latest aliases, huma's document routes and
// the routes on the mux): each has a valid declaration; each documented one is in the
// OpenAPI document with its security requirement, x-access and x-required-scope, and
// every operation of the document is a route of the table; routes that need a
// credential answer 401 without one and public ones do not.
func TestEveryRouteDeclaresItsAccessAndTheDocumentShowsIt(t *testing.T) {
	e := newRouteEnv(t)
	routes := e.svc.Routes()
	require.NotEmpty(t, routes)

	r := e.call(t, "GET", "/openapi.json", "", nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(r.body, &doc))
	require.Contains(t, doc.Components.SecuritySchemes, "bearer")

	kinds := map[ingest.AccessKind]int{}
	inTable := map[string]bool{}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		kinds[rt.Access.Kind]++
		switch rt.Access.Kind {
		case ingest.AccessPublic, ingest.AccessSignedURL, ingest.AccessBodyCredential, ingest.AccessAuthenticated:
			require.Empty(t, rt.Access.Scope, name)
		case ingest.AccessScope:
			_, err := auth.ParseScope(string(rt.Access.Scope))
			require.NoError(t, err, name)
		default:
			t.Errorf("%s declares no access (%+v)", name, rt.Access)
		}
		if !rt.Documented {
			continue
		}
		inTable[name] = true
		raw, ok := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		require.True(t, ok, "%s (operation %s) is not in the OpenAPI document", name, rt.Operation)
		var op struct {
			Responses   map[string]json.RawMessage `json:"responses"`
			Security    []map[string][]string      `json:"security"`
			Access      string                     `json:"x-access"`
			Scope       string                     `json:"x-required-scope"`
			Description string                     `json:"description"`
		}
		require.NoError(t, json.Unmarshal(raw, &op))
		require.Equal(t, string(rt.Access.Kind), op.Access, "%s: x-access", name)
		require.Contains(t, op.Description, "**Access:** "+rt.Access.String(), name)
		switch rt.Access.Kind {
		case ingest.AccessScope:
			require.Contains(t, op.Responses, "401", name)
			require.Contains(t, op.Responses, "403", name)
			require.Equal(t, string(rt.Access.Scope), op.Scope, "%s: x-required-scope", name)
			require.NotEmpty(t, op.Security, name)
			require.Equal(t, []string{string(rt.Access.Scope)}, op.Security[0]["bearer"], "%s: security", name)
		case ingest.AccessAuthenticated:
			require.Contains(t, op.Responses, "401", name)
			require.Equal(t, []map[string][]string{{"bearer": {}}}, op.Security, "%s: security", name)
		default:
			require.Equal(t, []map[string][]string{{}}, op.Security, "%s: security (no credential)", name)
		}
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			if m := strings.ToUpper(method); slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
				require.True(t, inTable[m+" "+path], "%s %s is in the document but not in the route table", m, path)
			}
		}
	}
	// Every kind is in use, and the routes outside huma are in the table too.
	for _, k := range []ingest.AccessKind{ingest.AccessPublic, ingest.AccessSignedURL, ingest.AccessBodyCredential, ingest.AccessAuthenticated, ingest.AccessScope} {
		require.NotZero(t, kinds[k], "no route declares %s", k)
	}
	for _, want := range []string{"GET /docs", "GET /openapi.json", "GET /ops/api/", "POST /ops/api/sql", "GET /static/", "GET /latest/jobs/{id}/events", "GET /health"} {
		require.True(t, slices.ContainsFunc(routes, func(rt ingest.Route) bool { return rt.Method+" "+rt.Path == want }), "%s is not in the route table", want)
	}

	// Without a credential: 401 where one is needed, never where none is.
	for _, rt := range routes {
		res := e.call(t, rt.Method, probePath(rt.Path, "alice"), "", nil, "")
		switch rt.Access.Kind {
		case ingest.AccessAuthenticated, ingest.AccessScope:
			require.Equal(t, http.StatusUnauthorized, res.status, "%s %s without a credential: %s", rt.Method, rt.Path, res.body)
			require.Contains(t, res.header.Get("WWW-Authenticate"), "Bearer")
		default:
			require.NotEqual(t, http.StatusUnauthorized, res.status, "%s %s is %s", rt.Method, rt.Path, rt.Access.Kind)
		}
	}
}

// readSpy records whether anything read the request body.
type readSpy struct {
	r    io.Reader
	read *atomic.Bool
}

func (s readSpy) Read(p []byte) (int, error) { s.read.Store(true); return s.r.Read(p) }

// TestEveryScopedRouteRefusesAKeyWithoutItsScope: for every route that declares a
// scope (and each /latest alias), an API key of the user holding every other scope
// (for erasure: the user's own key) gets a 403
// problem naming the missing scope, before the body is sent (the client waits for
// 100-continue, which never comes), and nothing stored on the server changes but the
// audit trail; a credential holding just that scope (for admin: an admin's session) is
// not refused by the check.
func TestEveryScopedRouteRefusesAKeyWithoutItsScope(t *testing.T) {
	e := newRouteEnv(t)
	all := []auth.Scope{auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeKeysManage}
	// scope: {an API key of alice with every other scope, a credential with just it}.
	// API keys never hold admin: alice's session is the credential with it.
	keys := map[auth.Scope][2]string{auth.ScopeAdmin: {e.apiKey(t, "ta", "alice", all...), e.tokens["alice"]}}
	for _, sc := range all {
		var without []auth.Scope
		for _, o := range all {
			if o != sc {
				without = append(without, o)
			}
		}
		keys[sc] = [2]string{e.apiKey(t, "ta", "alice", without...), e.apiKey(t, "ta", "alice", sc)}
	}
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	t.Cleanup(client.CloseIdleConnections)
	type problemBody struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
		Errors []struct {
			Field, Constraint string
		} `json:"errors"`
	}
	do := func(t *testing.T, method, path, key string, expect bool, read *atomic.Bool) (int, string, problemBody) {
		t.Helper()
		body := []byte(`{"job_id":"x","rating":"up","id":"x","tenant":"ta","user":"alice","jobs":["x"],"task":"upscale","to":"2"}`)
		req, err := http.NewRequest(method, e.api.URL+path, readSpy{r: bytes.NewReader(body), read: read})
		require.NoError(t, err)
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		if expect {
			req.Header.Set("Expect", "100-continue")
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		var p problemBody
		_ = json.Unmarshal(data, &p)
		return res.StatusCode, res.Header.Get("Content-Type"), p
	}

	var scopedRoutes []ingest.Route
	for _, rt := range e.svc.Routes() {
		if rt.Access.Kind == ingest.AccessScope {
			scopedRoutes = append(scopedRoutes, rt)
		}
	}
	require.Greater(t, len(scopedRoutes), 30, "every job, key, user, batch, rollout and operator route declares a scope")

	before := storedState(t, e)
	for _, rt := range scopedRoutes {
		t.Run("without "+string(rt.Access.Scope)+": "+rt.Method+" "+rt.Path, func(t *testing.T) {
			var read atomic.Bool
			// {id} is the key's own user: an API key never erases its owner.
			status, ctype, p := do(t, rt.Method, probePath(rt.Path, "alice"), keys[rt.Access.Scope][0], true, &read)
			require.Equal(t, http.StatusForbidden, status, "%+v", p)
			require.Equal(t, "application/problem+json", ctype)
			require.Equal(t, "forbidden", p.Code)
			require.Contains(t, p.Detail, string(rt.Access.Scope))
			require.Len(t, p.Errors, 1)
			require.Equal(t, "Authorization", p.Errors[0].Field)
			require.Equal(t, "scope", p.Errors[0].Constraint)
			require.False(t, read.Load(), "the refused request's body was sent and read")
		})
	}
	after := storedState(t, e)
	require.Equal(t, before, after, "refused requests changed what the server stores")

	for _, rt := range scopedRoutes {
		t.Run("with "+string(rt.Access.Scope)+": "+rt.Method+" "+rt.Path, func(t *testing.T) {
			var read atomic.Bool
			// {id} names nobody, so an allowed erasure or deletion removes nothing the
			// other rows need.
			status, _, p := do(t, rt.Method, probePath(rt.Path, "nobody"), keys[rt.Access.Scope][1], false, &read)
			require.NotEqual(t, http.StatusUnauthorized, status, "%+v", p)
			refused := status == http.StatusForbidden && len(p.Errors) == 1 && p.Errors[0].Constraint == "scope"
			require.False(t, refused, "a key with %s was refused by the scope check: %+v", rt.Access.Scope, p)
		})
	}
}

// storedState is every message on the server, as a sorted list, but the audit trail's
// (refusals are audited) and the API keys' daily use (a key's quota counts every
// request it authenticates, refused or not).
func storedState(t *testing.T, e *secureEnv) []string {
	t.Helper()
	var out []string
	for _, m := range everyStoredMessage(t, e.srv.JS) {
		if strings.HasPrefix(m.subject, "studio.audit.") || m.stream == "KV_apikey_usage" {
			continue
		}
		out = append(out, m.stream+" "+m.text)
	}
	sort.Strings(out)
	return out
}

// TestTheREADMEListsEveryRouteAndItsAccess: the README's route table is the one
// Service.Routes gives (one row per route and its versions); a route added without a
// row fails here with the table to paste (STUDIO_UPDATE_README=1 writes it).
func TestTheREADMEListsEveryRouteAndItsAccess(t *testing.T) {
	e := newRouteEnv(t)
	want := routeTableMarkdown(e.svc.Routes())
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	const begin, end = "<!-- routes:begin -->\n", "<!-- routes:end -->"
	_, rest, ok := strings.Cut(string(readme), begin)
	require.True(t, ok, "README.md has no %q marker", begin)
	got, _, ok := strings.Cut(rest, end)
	require.True(t, ok, "README.md has no %q marker", end)
	if os.Getenv("STUDIO_UPDATE_README") == "1" && got != want {
		fixed := strings.Replace(string(readme), begin+got+end, begin+want+end, 1)
		require.NoError(t, os.WriteFile("../README.md", []byte(fixed), 0o644))
		return
	}
	require.Equal(t, want, got, "README.md's route table differs from the routes served; paste this between the markers:\n%s", want)
}

// routeTableMarkdown renders routes as the README's table: one row per method, path
// without its version prefix and access, listing the versions that serve it.
func routeTableMarkdown(routes []ingest.Route) string {
	type row struct{ method, path, access string }
	versions := map[row][]string{}
	var rows []row
	for _, rt := range routes {
		version, path := "", rt.Path
		for _, v := range []string{"v1", "v2", "latest"} {
			if rest, ok := strings.CutPrefix(rt.Path, "/"+v+"/"); ok {
				version, path = v, "/"+rest
			}
		}
		r := row{rt.Method, path, rt.Access.String()}
		if _, seen := versions[r]; !seen {
			rows = append(rows, r)
		}
		if version != "" {
			versions[r] = append(versions[r], version)
		} else if versions[r] == nil {
			versions[r] = []string{}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].path != rows[j].path {
			return rows[i].path < rows[j].path
		}
		return rows[i].method < rows[j].method
	})
	order := map[string]int{"v1": 0, "v2": 1, "latest": 2}
	for _, v := range versions {
		sort.Slice(v, func(i, j int) bool { return order[v[i]] < order[v[j]] })
	}
	var b strings.Builder
	b.WriteString("| Method | Path | Versions | Access |\n|---|---|---|---|\n")
	for _, r := range rows {
		v := strings.Join(versions[r], ", ")
		if v == "" {
			v = "—"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", r.method, r.path, v, r.access)
	}
	return b.String()
}
