package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestUsersCommands(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	users, err := auth.OpenUsers(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokens(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.LoadOrCreateKeyFile(t.TempDir() + "/jwt-keys")
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewIssuer(keys, tokens, users)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	apiKeys, err := auth.OpenAPIKeys(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, _, err := auth.NewAPIKey("acme", "alice", "alice's", schemas.TierFree, []auth.Scope{auth.ScopeJobsRead}, time.Time{}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := apiKeys.Create(ctx, aliceKey); err != nil {
		t.Fatal(err)
	}
	deps := usersDeps{
		Users:  users,
		Keys:   apiKeys,
		Audit:  auth.NewAuditLog(streams.JSPublisher{JS: s.JS}),
		Issuer: func() (*auth.Issuer, error) { return issuer, nil },
		Eraser: func() (*erasure.Eraser, error) { return erasure.NewEraser(ctx, s.JS, blobs) },
	}
	opts := func(user, tier string) usersOptions {
		return usersOptions{tenant: "acme", user: user, tier: tier, by: "cli-ops"}
	}
	var token auth.TokenPair
	tests := []struct {
		name    string
		sub     string
		o       usersOptions
		want    string
		wantErr error
		after   func(t *testing.T, out string)
	}{
		{name: "create adds a user", sub: "create", o: opts("alice", "free"), want: "created acme/alice (free)"},
		{name: "create refuses a taken id", sub: "create", o: opts("alice", "free"), wantErr: auth.ErrUserExists},
		{name: "create --admin grants the admin scope", sub: "create", o: usersOptions{tenant: "acme", user: "root", tier: "normal", admin: true, by: "cli-ops"}, want: "created acme/root"},
		{name: "list shows the tenant's users", sub: "list", o: opts("", "normal"), want: "jobs:write,jobs:read,keys:manage,admin"},
		{name: "set-tier changes the tier", sub: "set-tier", o: opts("alice", "premium"), want: "acme/alice is now premium"},
		{name: "token prints a working token pair", sub: "token", o: opts("alice", "normal"), after: func(t *testing.T, out string) {
			if err := json.Unmarshal([]byte(out), &token); err != nil {
				t.Fatal(err)
			}
			p, _, err := issuer.Verify(ctx, token.AccessToken)
			if err != nil || p.Tier != schemas.TierPremium {
				t.Fatalf("%+v %v", p, err)
			}
		}},
		{name: "delete revokes the sessions and keys and removes the user", sub: "delete", o: opts("alice", "normal"), want: "revoked 1 sessions and 1 API keys", after: func(t *testing.T, _ string) {
			if _, _, err := issuer.Verify(ctx, token.AccessToken); !errors.Is(err, auth.ErrTokenRevoked) {
				t.Fatalf("token after delete: %v", err)
			}
			if k, err := apiKeys.Get(ctx, aliceKey.ID); err != nil || k.RevokedAt.IsZero() {
				t.Fatalf("alice's API key after delete: %+v %v; want it revoked", k, err)
			}
		}},
		{name: "delete of a missing user fails", sub: "delete", o: opts("alice", "normal"), wantErr: auth.ErrUserNotFound},
		{name: "erase prints its report", sub: "erase", o: opts("root", "normal"), want: `"user": "root"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := usersCommand(ctx, tc.sub, tc.o, deps, &out)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Fatalf("output %q lacks %q", out.String(), tc.want)
			}
			if tc.after != nil {
				tc.after(t, out.String())
			}
		})
	}

	audit, err := s.JS.Stream(ctx, schemas.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	// Erasing root removed the record of root's creation: it names root.
	for action, want := range map[string]uint64{
		auth.ActionUserCreate: 2, auth.ActionUserSetTier: 1, auth.ActionLogin: 1, auth.ActionUserDelete: 2,
	} {
		info, err := audit.Info(ctx, jetstream.WithSubjectFilter(schemas.AuditSubject(action)))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.State.Subjects[schemas.AuditSubject(action)]; got != want {
			t.Errorf("%d %s audit records, want %d", got, action, want)
		}
	}
	if info, _ := audit.Info(ctx, jetstream.WithSubjectFilter(schemas.SubjectErasure)); info.State.Subjects[schemas.SubjectErasure] != 1 {
		t.Error("the erasure left no record")
	}
}
