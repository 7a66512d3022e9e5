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
