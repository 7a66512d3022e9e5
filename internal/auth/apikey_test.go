package auth_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func newKey(t *testing.T, expires time.Time) (*auth.APIKey, string) {
	t.Helper()
	k, token, err := auth.NewAPIKey("acme", "alice", "ci", schemas.TierNormal, []auth.Scope{auth.ScopeJobsWrite}, expires, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	return k, token
}

func TestAPIKeyCheck(t *testing.T) {
	k, token := newKey(t, now.Add(24*time.Hour))
	_, secret, err := auth.ParseAPIKey(token)
	if err != nil {
		t.Fatal(err)
	}
	revoked := *k
	revoked.RevokedAt = now
	tests := []struct {
		name   string
		key    *auth.APIKey
		secret string
		at     time.Time
		want   error
	}{
		{name: "the right secret is accepted", key: k, secret: secret, at: now},
		{name: "a wrong secret is refused", key: k, secret: strings.Repeat("A", len(secret)), at: now, want: auth.ErrInvalidKey},
		{name: "a revoked key is refused", key: &revoked, secret: secret, at: now, want: auth.ErrKeyRevoked},
		{name: "an expired key is refused", key: k, secret: secret, at: now.Add(25 * time.Hour), want: auth.ErrKeyExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.Check(tc.secret, tc.at)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && !errors.Is(err, auth.ErrInvalidKey) {
				t.Fatalf("%v does not wrap ErrInvalidKey", err)
			}
		})
	}
}

func TestAPIKeyFormat(t *testing.T) {
	k, token := newKey(t, time.Time{})
	if !auth.IsAPIKey(token) || !strings.HasPrefix(token, "csk_"+k.ID+"_") {
		t.Fatalf("token %q does not read csk_<id>_<secret>", token)
	}
	if strings.Contains(k.Hash, strings.TrimPrefix(token, "csk_"+k.ID+"_")) || len(k.Hash) != 64 {
		t.Fatal("the record must hold only the sha256 of the secret")
	}
	for _, bad := range []string{"", "csk_", "csk_abc_def", "sk_" + token[4:], token + "x", strings.Replace(token, k.ID, strings.ToUpper(k.ID), 1)} {
		if _, _, err := auth.ParseAPIKey(bad); !errors.Is(err, auth.ErrInvalidKey) {
			t.Errorf("ParseAPIKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
	if _, _, err := auth.NewAPIKey("acme", "alice", "", schemas.TierFree, []auth.Scope{auth.ScopeAdmin}, time.Time{}, 0, now); err == nil {
		t.Fatal("an API key with the admin scope was made")
	}
	if _, _, err := auth.NewAPIKey("acme", "alice", "", schemas.TierFree, []auth.Scope{auth.ScopeJobsRead}, now.Add(-time.Hour), 0, now); err == nil {
		t.Fatal("an API key expiring in the past was made")
	}
}
