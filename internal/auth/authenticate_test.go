package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

func TestAuthenticatorDecidesAndAuditsEveryRequest(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	keys, err := auth.OpenAPIKeys(ctx, e.srv.JS)
	requireErr(t, err)
	a := &auth.Authenticator{Tokens: e.issuer, Keys: keys, Audit: auth.NewAuditLog(streams.JSPublisher{JS: e.srv.JS})}
	pair, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	key, keyToken, err := auth.NewAPIKey("acme", "bob", "ci", schemas.TierFree, []auth.Scope{auth.ScopeJobsWrite}, time.Time{}, 1, time.Now())
	requireErr(t, err)
	requireErr(t, keys.Create(ctx, key))
	audit, err := e.srv.JS.Stream(ctx, schemas.StreamAudit)
	requireErr(t, err)

	tests := []struct {
		name       string
		header     string
		wantErr    error
		wantUser   string
		wantResult string
		wantRes    string
	}{
		{name: "a request without credentials is refused and audited as anonymous", header: "", wantErr: auth.ErrNoCredentials, wantResult: auth.ResultDenied},
		{name: "a valid access token is let in", header: "Bearer " + pair.AccessToken, wantUser: "alice", wantResult: auth.ResultAllowed},
		{name: "a refresh token is not accepted as a credential", header: "Bearer " + pair.RefreshToken, wantErr: auth.ErrInvalidToken, wantResult: auth.ResultDenied},
		{name: "a Basic header is refused", header: "Basic YWxpY2U6c2VjcmV0", wantErr: auth.ErrInvalidToken, wantResult: auth.ResultDenied},
		{name: "an API key is let in as its owner and named in the audit", header: "Bearer " + keyToken, wantUser: "bob", wantResult: auth.ResultAllowed, wantRes: "api-key/" + key.ID},
		{name: "an API key over its daily quota is refused and the refusal names the key", header: "Bearer " + keyToken, wantErr: quota.ErrDailyQuota, wantUser: "bob", wantResult: auth.ResultDenied, wantRes: "api-key/" + key.ID},
		{name: "a garbled API key is refused", header: "Bearer csk_nonsense", wantErr: auth.ErrInvalidKey, wantResult: auth.ResultDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, tc.header, auth.Request{IP: "198.51.100.7", RequestID: "req-1"})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err == nil && p.User != tc.wantUser {
				t.Fatalf("principal %+v, want user %s", p, tc.wantUser)
			}
			m, err := audit.GetLastMsgForSubject(ctx, schemas.AuditSubject(auth.ActionAuthenticate))
			requireErr(t, err)
			var ev schemas.AuditEvent
			requireErr(t, json.Unmarshal(m.Data, &ev))
			wantActor := tc.wantUser
			if wantActor == "" {
				wantActor = auth.Anonymous
			}
			if ev.Validate() != nil || ev.Result != tc.wantResult || ev.Actor != wantActor || ev.Resource != tc.wantRes || ev.IP != "198.51.100.7" || ev.RequestID != "req-1" {
				t.Fatalf("audit event %+v: want %s by %s on %q", ev, tc.wantResult, wantActor, tc.wantRes)
			}
		})
	}
}
