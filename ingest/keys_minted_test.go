package ingest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/auth"
)

type mintedKey struct {
	Key        string       `json:"key"`
	ID         string       `json:"id"`
	Parent     string       `json:"parent"`
	Scopes     []auth.Scope `json:"scopes"`
	ExpiresAt  time.Time    `json:"expires_at"`
	DailyQuota int          `json:"daily_quota"`
}

// mint creates a key with bearer and returns the answer's status and, on 201, the key.
func (e *secureEnv) mint(t *testing.T, bearer, body string) (int, mintedKey, string) {
	t.Helper()
	r := e.call(t, http.MethodPost, "/v1/keys", bearer, []byte(body), "application/json")
	var k mintedKey
	if r.status == http.StatusCreated {
		require.NoError(t, json.Unmarshal(r.body, &k))
	}
	return r.status, k, string(r.body)
}

func TestAKeyMintsOnlyKeysBoundedByItself(t *testing.T) {
	e := newSecureEnv(t)
	status, parent, body := e.mint(t, e.tokens["carol"], `{"name":"parent","scopes":["jobs:read","keys:manage"],"expires_in":"1h","daily_quota":50}`)
	require.Equal(t, http.StatusCreated, status, body)

	t.Run("a child with a subset of the scopes inherits the expiry and quota", func(t *testing.T) {
		status, child, body := e.mint(t, parent.Key, `{"name":"child","scopes":["jobs:read"]}`)
		require.Equal(t, http.StatusCreated, status, body)
		require.Equal(t, parent.ID, child.Parent)
		require.Equal(t, []auth.Scope{auth.ScopeJobsRead}, child.Scopes)
		require.True(t, child.ExpiresAt.Equal(parent.ExpiresAt), "child expires %s, parent %s", child.ExpiresAt, parent.ExpiresAt)
		require.Equal(t, 50, child.DailyQuota)
		require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", child.Key, nil, "").status)
	})
	for _, tc := range []struct {
		name, body string
	}{
		{"a scope the parent lacks is refused", `{"scopes":["jobs:write"]}`},
		{"the admin scope is refused", `{"scopes":["admin"]}`},
		{"an expiry after the parent's is refused", `{"scopes":["jobs:read"],"expires_in":"2h"}`},
		{"a larger daily quota is refused", `{"scopes":["jobs:read"],"daily_quota":51}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := e.mint(t, parent.Key, tc.body)
			require.Equal(t, http.StatusForbidden, status, body)
		})
	}
}

func TestAReadOnlyKeyCanNeitherMintNorErase(t *testing.T) {
	e := newSecureEnv(t)
	status, ro, body := e.mint(t, e.tokens["carol"], `{"scopes":["jobs:read"]}`)
	require.Equal(t, http.StatusCreated, status, body)

	status, _, body = e.mint(t, ro.Key, `{"scopes":["jobs:read"]}`)
	require.Equal(t, http.StatusForbidden, status, body)
	r := e.call(t, http.MethodDelete, "/v1/users/carol/data", ro.Key, nil, "")
	require.Equal(t, http.StatusForbidden, r.status, string(r.body))
	r = e.call(t, http.MethodDelete, "/v1/keys/"+ro.ID, ro.Key, nil, "")
	require.Equal(t, http.StatusForbidden, r.status, string(r.body))
	// The account is intact: carol still works and so does the key.
	require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", e.tokens["carol"], nil, "").status)
	require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", ro.Key, nil, "").status)
}

func TestRevokingAKeyRevokesEveryKeyMintedFromIt(t *testing.T) {
	e := newSecureEnv(t)
	manage := `{"scopes":["jobs:read","keys:manage"]}`
	status, root, body := e.mint(t, e.tokens["carol"], manage)
	require.Equal(t, http.StatusCreated, status, body)
	chain := []mintedKey{root}
	for len(chain) < auth.MaxKeyDepth {
		status, k, body := e.mint(t, chain[len(chain)-1].Key, manage)
		require.Equal(t, http.StatusCreated, status, body)
		chain = append(chain, k)
	}
	status, _, body = e.mint(t, chain[len(chain)-1].Key, manage)
	require.Equal(t, http.StatusForbidden, status, "a chain longer than MaxKeyDepth: %s", body)
	require.Contains(t, body, "key_depth")

	// A sibling outside the revoked branch keeps working.
	status, sibling, body := e.mint(t, e.tokens["carol"], `{"scopes":["jobs:read"]}`)
	require.Equal(t, http.StatusCreated, status, body)
	for i, k := range chain {
		require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", k.Key, nil, "").status, "key %d before revocation", i)
	}

	r := e.call(t, http.MethodDelete, "/v1/keys/"+chain[1].ID, e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	for i, k := range chain {
		want := http.StatusUnauthorized
		if i == 0 {
			want = http.StatusOK // above the revoked key
		}
		require.Equal(t, want, e.call(t, http.MethodGet, "/v2/jobs", k.Key, nil, "").status, fmt.Sprintf("key %d of the chain", i))
	}
	require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", sibling.Key, nil, "").status)

	// The listing shows the cascade: every key below the revoked one is revoked.
	r = e.call(t, http.MethodGet, "/v1/keys", e.tokens["carol"], nil, "")
	require.Equal(t, http.StatusOK, r.status)
	var listed []struct {
		ID        string    `json:"id"`
		RevokedAt time.Time `json:"revoked_at"`
	}
	require.NoError(t, json.Unmarshal(r.body, &listed))
	revoked := map[string]bool{}
	for _, k := range listed {
		revoked[k.ID] = !k.RevokedAt.IsZero()
	}
	for i, k := range chain {
		require.Equal(t, i >= 1, revoked[k.ID], "key %d revoked", i)
	}
}

func TestDeletingAUserStopsEveryKeyAndTokenOfTheirsAtOnce(t *testing.T) {
	e := newSecureEnv(t)
	status, key, body := e.mint(t, e.tokens["carol"], `{"scopes":["jobs:read","keys:manage"]}`)
	require.Equal(t, http.StatusCreated, status, body)
	status, child, body := e.mint(t, key.Key, `{"scopes":["jobs:read"]}`)
	require.Equal(t, http.StatusCreated, status, body)
	creds := map[string]string{"access token": e.tokens["carol"], "API key": key.Key, "minted key": child.Key}
	for name, c := range creds {
		require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/v2/jobs", c, nil, "").status, name)
	}
	r := e.call(t, http.MethodDelete, "/v1/users/carol", e.tokens["alice"], nil, "")
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	for name, c := range creds {
		for _, rt := range [][2]string{{http.MethodGet, "/v2/jobs"}, {http.MethodPost, "/v1/keys"}, {http.MethodDelete, "/v1/users/carol/data"}} {
			r := e.call(t, rt[0], rt[1], c, []byte(`{}`), "application/json")
			require.Equal(t, http.StatusUnauthorized, r.status, "%s of the deleted user: %s %s: %s", name, rt[0], rt[1], r.body)
		}
	}
	// The id is given to someone new: the former user's keys must not act for them.
	r = e.call(t, http.MethodPost, "/v1/users", e.tokens["alice"], []byte(`{"id":"carol"}`), "application/json")
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	for _, name := range []string{"API key", "minted key"} {
		r := e.call(t, http.MethodGet, "/v2/jobs", creds[name], nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status, "%s of the former carol, after the id was created again: %s", name, r.body)
	}
}
