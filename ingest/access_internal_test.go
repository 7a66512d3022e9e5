package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
)

// TestARouteWithoutADeclaredAccessIsRefusedAtRegistration: an operation without a
// declaration panics when it is registered, through route, through huma.Register
// directly (the adapter every operation passes) and as a mux route; a declared one is
// recorded in the table with what it declared.
func TestARouteWithoutADeclaredAccessIsRefusedAtRegistration(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	s := NewService(Config{}, nil, nil, nil, nil, nil, nil, log)
	newAPI := func() (huma.API, *routeTable) {
		mux := http.NewServeMux()
		table := newRouteTable(s, mux)
		cfg := huma.DefaultConfig("test", "1")
		cfg.OpenAPIPath, cfg.DocsPath, cfg.SchemasPath = "", "", ""
		return huma.NewAPI(cfg, &accessAdapter{Adapter: humago.NewAdapter(mux, ""), t: table}), table
	}
	h := func(context.Context, *struct{}) (*struct{}, error) { return nil, nil }
	mustPanic := func(t *testing.T, what string, f func()) {
		t.Helper()
		defer func() {
			p := recover()
			if p == nil {
				t.Fatalf("%s: registered without a declaration, want a panic", what)
			}
			if msg, _ := p.(string); !strings.Contains(msg, "declares no") {
				t.Fatalf("%s: panicked with %v, want it to say the route declares no access", what, p)
			}
		}()
		f()
	}

	for _, tc := range []struct {
		name string
		meta map[string]any
	}{
		{"no metadata", nil},
		{"other metadata", map[string]any{"owner": "jobs"}},
		{"an empty declaration", declare(Access{})},
		{"a scope kind without a scope", declare(Access{Kind: AccessScope})},
		{"an unknown scope", declare(scoped("jobs:everything"))},
		{"public with a scope", declare(Access{Kind: AccessPublic, Scope: auth.ScopeAdmin})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api, table := newAPI()
			op := huma.Operation{OperationID: "undeclared", Method: http.MethodGet, Path: "/undeclared", Metadata: tc.meta}
			mustPanic(t, "route", func() { route(s, api, versioned{version: "v1", latest: true}, op, h) })
			mustPanic(t, "huma.Register", func() { huma.Register(api, op, h) })
			if len(table.routes) != 0 {
				t.Fatalf("the table recorded %v for an undeclared operation", table.routes)
			}
		})
	}
	mustPanic(t, "a mux route", func() {
		_, table := newAPI()
		table.handle("GET /undeclared", Access{}, http.NotFoundHandler())
	})

	api, table := newAPI()
	route(s, api, versioned{version: "v1", latest: true}, huma.Operation{OperationID: "declared", Method: http.MethodGet, Path: "/declared",
		Metadata: declare(scoped(auth.ScopeJobsRead))}, h)
	if len(table.routes) != 2 {
		t.Fatalf("table %v, want the route and its /latest alias", table.routes)
	}
	for _, r := range table.routes {
		if r.Access.Kind != AccessScope || r.Access.Scope != auth.ScopeJobsRead {
			t.Errorf("%s %s recorded %+v, want scope jobs:read", r.Method, r.Path, r.Access)
		}
	}
	op := api.OpenAPI().Paths["/v1/declared"].Get
	if op.Extensions["x-required-scope"] != "jobs:read" || len(op.Security) != 1 || op.Security[0]["bearer"][0] != "jobs:read" {
		t.Errorf("documented as %v / %v, want security bearer [jobs:read] and x-required-scope", op.Security, op.Extensions)
	}
}

// TestAuthorizeAppliesTheDeclaration is the one check against each kind of declaration,
// including a request that reaches it without passing authenticate (no principal).
func TestAuthorizeAppliesTheDeclaration(t *testing.T) {
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	s := NewService(Config{}, nil, nil, nil, nil, nil, nil, log, WithSecurity(&Security{Authenticator: &auth.Authenticator{}}))
	session := auth.Principal{Tenant: "ta", User: "ann", Scopes: []auth.Scope{auth.ScopeJobsRead}, TokenID: "t1"}
	key := session
	key.KeyID, key.TokenID = "k1", ""
	admin := auth.Principal{Tenant: "ta", User: "root", Scopes: []auth.Scope{auth.ScopeAdmin}, TokenID: "t2"}
	erase := scoped(auth.ScopeAdmin).orOwnSession("id")
	for _, tc := range []struct {
		name   string
		who    *auth.Principal
		access Access
		id     string // the path parameter "id"
		dev    bool
		want   int // 0: let through
	}{
		{"public without a credential", nil, public, "", false, 0},
		{"signed URL without a credential", nil, signedURL, "", false, 0},
		{"body credential without a credential", nil, bodyCredential, "", false, 0},
		{"any credential, none sent", nil, authenticated, "", false, http.StatusUnauthorized},
		{"any credential, a key", &key, authenticated, "", false, 0},
		{"a scope, none sent", nil, scoped(auth.ScopeJobsRead), "", false, http.StatusUnauthorized},
		{"a scope, held", &session, scoped(auth.ScopeJobsRead), "", false, 0},
		{"a scope, missing", &session, scoped(auth.ScopeJobsWrite), "", false, http.StatusForbidden},
		{"a scope, admin holds it", &admin, scoped(auth.ScopeKeysManage), "", false, 0},
		{"erasure: admin", &admin, erase, "ann", false, 0},
		{"erasure: own session", &session, erase, "ann", false, 0},
		{"erasure: own API key", &key, erase, "ann", false, http.StatusForbidden},
		{"erasure: another user", &session, erase, "bea", false, http.StatusForbidden},
		{"login: no admin", &session, scoped(auth.ScopeAdmin).openWithDevLogin(), "", false, http.StatusForbidden},
		{"login: none sent", nil, scoped(auth.ScopeAdmin).openWithDevLogin(), "", false, http.StatusUnauthorized},
		{"login: --auth-dev", nil, scoped(auth.ScopeAdmin).openWithDevLogin(), "", true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.sec.DevLogin = tc.dev
			r, _ := http.NewRequest(http.MethodGet, "/x", nil)
			if tc.who != nil {
				r = r.WithContext(auth.NewContext(r.Context(), *tc.who))
			}
			prob, h := s.authorize(r, tc.access, func(name string) string {
				if name == "id" {
					return tc.id
				}
				return ""
			})
			switch {
			case tc.want == 0 && prob != nil:
				t.Fatalf("refused with %d %s: %s", prob.Status, prob.Code, prob.Detail)
			case tc.want == 0:
			case prob == nil:
				t.Fatalf("let through, want %d", tc.want)
			case prob.Status != tc.want:
				t.Fatalf("answered %d %s, want %d", prob.Status, prob.Code, tc.want)
			case tc.want == http.StatusUnauthorized && (prob.Code != "unauthenticated" || !strings.Contains(h.Get("WWW-Authenticate"), "Bearer")):
				t.Fatalf("401 %s with WWW-Authenticate %q, want unauthenticated and a Bearer challenge", prob.Code, h.Get("WWW-Authenticate"))
			case tc.want == http.StatusForbidden && (prob.Code != "forbidden" || !strings.Contains(prob.Detail, string(tc.access.Scope))):
				t.Fatalf("403 %s %q, want forbidden naming %s", prob.Code, prob.Detail, tc.access.Scope)
			}
		})
	}
}
