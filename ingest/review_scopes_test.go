package ingest_test

import (
	"net/http"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
)

// A credential that may not read or write jobs (here: keys:manage only) is refused by
// every job route, as GET /v1/jobs/{id} and POST /v1/jobs refuse it.
func TestRoutesOutsideAdmissionRequireTheirScopes(t *testing.T) {
	e := newSecureEnv(t)
	key := e.apiKey(t, "tb", "bob", auth.ScopeKeysManage)
	for _, tc := range []struct {
		name, method, path string
	}{
		{"listing jobs needs jobs:read", http.MethodGet, "/v1/jobs"},
		{"presigning an upload needs jobs:write", http.MethodPost, "/v1/uploads"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, e.api.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := e.api.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s with a keys:manage-only key answered %d, want 403", tc.method, tc.path, res.StatusCode)
			}
		})
	}
}
