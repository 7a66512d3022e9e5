package auth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

type authEnv struct {
	srv    *streamstest.Server
	users  *auth.Users
	tokens *auth.Tokens
	keys   *auth.KeySet
	issuer *auth.Issuer
}

func newAuthEnv(t *testing.T, opts ...auth.IssuerOption) *authEnv {
	t.Helper()
	srv := streamstest.Start(t)
	e := &authEnv{srv: srv}
	e.users, e.tokens, e.keys = openStores(t, srv.JS)
	e.issuer = e.newIssuer(t, e.keys, opts...)
	ctx := context.Background()
	for _, u := range []*auth.User{
		{Tenant: "acme", ID: "alice", Tier: schemas.TierNormal},
		{Tenant: "acme", ID: "bob", Tier: schemas.TierFree},
	} {
		if err := e.users.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func openStores(t *testing.T, js jetstream.JetStream) (*auth.Users, *auth.Tokens, *auth.KeySet) {
	t.Helper()
	ctx := context.Background()
	users, err := auth.OpenUsers(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokens(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	k, err := auth.GenerateKey("k1", auth.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := auth.NewKeySet(k)
	if err != nil {
		t.Fatal(err)
	}
	return users, tokens, ks
}

func (e *authEnv) newIssuer(t *testing.T, ks *auth.KeySet, opts ...auth.IssuerOption) *auth.Issuer {
	t.Helper()
	iss, err := auth.NewIssuer(ks, e.tokens, e.users, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func requireErr(t *testing.T, err error, want ...error) {
	t.Helper()
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("error %v, want %v", err, w)
		}
	}
	if len(want) == 0 && err != nil {
		t.Fatal(err)
	}
}

func TestAccessTokensCarryTheUser(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	pair, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	if pair.TokenType != "Bearer" || pair.ExpiresIn != 900 || pair.RefreshExpiresIn != 7*24*3600 {
		t.Fatalf("pair %+v: want a Bearer token for 15 minutes and a refresh token for 7 days", pair)
	}
	p, c, err := e.issuer.Verify(ctx, pair.AccessToken)
	requireErr(t, err)
	if p.Tenant != "acme" || p.User != "alice" || p.Tier != schemas.TierNormal || !p.Has(auth.ScopeJobsWrite) || p.Has(auth.ScopeAdmin) {
		t.Fatalf("principal %+v", p)
	}
	if got := c.ExpiresAt.Sub(c.IssuedAt.Time); got != 15*time.Minute {
		t.Fatalf("access token lives %s, want 15m", got)
	}
	_, err = e.issuer.Issue(ctx, "acme", "nobody")
	requireErr(t, err, auth.ErrUserNotFound)
}

func TestTokensAreRefusedWhereTheyDoNotBelong(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	pair, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)

	later := time.Now().Add(16 * time.Minute)
	expired := e.newIssuer(t, e.keys, auth.WithClock(func() time.Time { return later }))
	otherKeys, _ := auth.GenerateKey("k1", auth.EdDSA) // same kid, other key
	otherSet, _ := auth.NewKeySet(otherKeys)
	forger := e.newIssuer(t, otherSet)

	// A token that names the EdDSA key but is MACed with HS256 over the public key.
	claims := jwt.MapClaims{"sub": "alice", "tnt": "acme", "token_use": "access", "fam": "f", "jti": "j",
		"iss": "studio", "aud": "studio-api", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "scp": []string{"admin"}}
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	confused.Header["kid"] = "k1"
	confusedToken, err := confused.SignedString([]byte(e.keys.Active().PublicKey()))
	requireErr(t, err)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	none.Header["kid"] = "k1"
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	requireErr(t, err)

	tests := []struct {
		name   string
		verify func() error
		want   []error
	}{
		{name: "a refresh token is not an access token", verify: func() error { _, _, err := e.issuer.Verify(ctx, pair.RefreshToken); return err }, want: []error{auth.ErrInvalidToken}},
		{name: "an access token cannot refresh", verify: func() error { _, err := e.issuer.Refresh(ctx, pair.AccessToken); return err }, want: []error{auth.ErrInvalidToken}},
		{name: "an access token is refused after 15 minutes", verify: func() error { _, _, err := expired.Verify(ctx, pair.AccessToken); return err }, want: []error{auth.ErrInvalidToken, auth.ErrTokenExpired}},
		{name: "a token signed by an unknown key is refused", verify: func() error { _, _, err := forger.Verify(ctx, pair.AccessToken); return err }, want: []error{auth.ErrInvalidToken}},
		{name: "a token cannot switch the key's algorithm to HS256", verify: func() error { _, _, err := e.issuer.Verify(ctx, confusedToken); return err }, want: []error{auth.ErrInvalidToken}},
		{name: "an unsigned token is refused", verify: func() error { _, _, err := e.issuer.Verify(ctx, noneToken); return err }, want: []error{auth.ErrInvalidToken}},
		{name: "a truncated token is refused", verify: func() error {
			_, _, err := e.issuer.Verify(ctx, pair.AccessToken[:len(pair.AccessToken)-4])
			return err
		}, want: []error{auth.ErrInvalidToken}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { requireErr(t, tc.verify(), tc.want...) })
	}
}

func TestKeyRotationKeepsOldTokensValid(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	hs, err := auth.GenerateKey("k2", auth.HS256)
	requireErr(t, err)
	before, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	rotated, err := auth.NewKeySet(hs, e.keys.Active())
	requireErr(t, err)
	iss := e.newIssuer(t, rotated)
	_, _, err = iss.Verify(ctx, before.AccessToken)
	requireErr(t, err)
	after, err := iss.Refresh(ctx, before.RefreshToken)
	requireErr(t, err)
	tok, _, _ := jwt.NewParser().ParseUnverified(after.AccessToken, jwt.MapClaims{})
	if tok.Header["kid"] != "k2" || tok.Header["alg"] != "HS256" {
		t.Fatalf("the refreshed token was signed by %v/%v, want the new key k2/HS256", tok.Header["kid"], tok.Header["alg"])
	}
	// Dropping the old key retires what it signed.
	onlyNew, _ := auth.NewKeySet(hs)
	_, _, err = e.newIssuer(t, onlyNew).Verify(ctx, before.AccessToken)
	requireErr(t, err, auth.ErrInvalidToken)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	first, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	second, err := e.issuer.Refresh(ctx, first.RefreshToken)
	requireErr(t, err)
	if second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	third, err := e.issuer.Refresh(ctx, second.RefreshToken)
	requireErr(t, err)
	_, _, err = e.issuer.Verify(ctx, third.AccessToken)
	requireErr(t, err)

	// The first refresh token comes back: reuse. The whole family dies.
	_, err = e.issuer.Refresh(ctx, first.RefreshToken)
	requireErr(t, err, auth.ErrInvalidToken, auth.ErrRefreshReused)
	_, err = e.issuer.Refresh(ctx, third.RefreshToken)
	requireErr(t, err, auth.ErrInvalidToken, auth.ErrTokenRevoked)
	_, _, err = e.issuer.Verify(ctx, third.AccessToken)
	requireErr(t, err, auth.ErrInvalidToken, auth.ErrTokenRevoked)

	// Another login of the same user is not affected.
	other, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	_, err = e.issuer.Refresh(ctx, other.RefreshToken)
	requireErr(t, err)
}

func TestConcurrentRefreshesOnTwoReplicasLetOneWinAndRevokeTheFamily(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	nc2, err := e.srv.Embedded.Connect("replica-2")
	requireErr(t, err)
	t.Cleanup(nc2.Close)
	js2, err := jetstream.New(nc2)
	requireErr(t, err)
	users2, tokens2, _ := openStores(t, js2)
	iss2, err := auth.NewIssuer(e.keys, tokens2, users2)
	requireErr(t, err)

	pair, err := e.issuer.Issue(ctx, "acme", "alice")
	requireErr(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var wins, reuses int
	for i := range 8 {
		iss := e.issuer
		if i%2 == 1 {
			iss = iss2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := iss.Refresh(ctx, pair.RefreshToken)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, auth.ErrRefreshReused), errors.Is(err, auth.ErrTokenRevoked):
				reuses++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || reuses != 7 {
		t.Fatalf("%d refreshes won and %d were refused, want 1 and 7", wins, reuses)
	}
	_, _, err = e.issuer.Verify(ctx, pair.AccessToken)
	requireErr(t, err, auth.ErrTokenRevoked)
}

func TestLogoutAndUserChanges(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		act   func(e *authEnv, p auth.TokenPair) error
		check func(t *testing.T, e *authEnv, p auth.TokenPair)
	}{
		{
			name: "logout with the access token ends the access and the refresh token",
			act:  func(e *authEnv, p auth.TokenPair) error { return e.issuer.Logout(ctx, p.AccessToken) },
			check: func(t *testing.T, e *authEnv, p auth.TokenPair) {
				_, _, err := e.issuer.Verify(ctx, p.AccessToken)
				requireErr(t, err, auth.ErrTokenRevoked)
				_, err = e.issuer.Refresh(ctx, p.RefreshToken)
				requireErr(t, err, auth.ErrTokenRevoked)
			},
		},
		{
			name: "logout with the refresh token also ends the access token",
			act:  func(e *authEnv, p auth.TokenPair) error { return e.issuer.Logout(ctx, p.RefreshToken) },
			check: func(t *testing.T, e *authEnv, p auth.TokenPair) {
				_, _, err := e.issuer.Verify(ctx, p.AccessToken)
				requireErr(t, err, auth.ErrTokenRevoked)
			},
		},
		{
			name: "revoking a user ends every session",
			act: func(e *authEnv, p auth.TokenPair) error {
				n, err := e.issuer.RevokeUser(ctx, "acme", "alice")
				if n != 1 {
					t.Errorf("RevokeUser revoked %d sessions, want 1", n)
				}
				return err
			},
			check: func(t *testing.T, e *authEnv, p auth.TokenPair) {
				_, _, err := e.issuer.Verify(ctx, p.AccessToken)
				requireErr(t, err, auth.ErrTokenRevoked)
			},
		},
		{
			name: "a deleted user cannot refresh",
			act:  func(e *authEnv, p auth.TokenPair) error { return e.users.Delete(ctx, "acme", "alice") },
			check: func(t *testing.T, e *authEnv, p auth.TokenPair) {
				_, err := e.issuer.Refresh(ctx, p.RefreshToken)
				requireErr(t, err, auth.ErrTokenRevoked)
			},
		},
		{
			name: "a tier change reaches the token at the next refresh",
			act: func(e *authEnv, p auth.TokenPair) error {
				_, err := e.users.SetTier(ctx, "acme", "alice", schemas.TierPremium)
				return err
			},
			check: func(t *testing.T, e *authEnv, p auth.TokenPair) {
				next, err := e.issuer.Refresh(ctx, p.RefreshToken)
				requireErr(t, err)
				pr, _, err := e.issuer.Verify(ctx, next.AccessToken)
				requireErr(t, err)
				if pr.Tier != schemas.TierPremium {
					t.Fatalf("tier %s after refresh, want premium", pr.Tier)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnv(t)
			p, err := e.issuer.Issue(ctx, "acme", "alice")
			requireErr(t, err)
			requireErr(t, tc.act(e, p))
			tc.check(t, e, p)
			// Bob's session is never touched.
			bob, err := e.issuer.Issue(ctx, "acme", "bob")
			requireErr(t, err)
			_, _, err = e.issuer.Verify(ctx, bob.AccessToken)
			requireErr(t, err)
		})
	}
}

func TestDevBootstrapPrintsAWorkingAdminToken(t *testing.T) {
	e := newAuthEnv(t)
	ctx := context.Background()
	for range 2 { // a second `studio up` reuses the user
		tok, err := auth.DevBootstrap(ctx, e.users, e.issuer)
		requireErr(t, err)
		p, _, err := e.issuer.Verify(ctx, tok)
		requireErr(t, err)
		if p.Tenant != "local" || p.User != "local" || !p.Has(auth.ScopeAdmin) || p.Tier != schemas.TierPremium {
			t.Fatalf("dev principal %+v", p)
		}
		if strings.Count(tok, ".") != 2 {
			t.Fatalf("%q is not a JWT", tok)
		}
	}
}

// racingTokens is the real token store with a hook that runs once, just before the
// next session is stored: where another replica's disable or delete lands when it
// runs between a login's check of the user and the login's session write.
type racingTokens struct {
	*auth.Tokens
	beforeCreate func()
}

func (s *racingTokens) CreateFamily(ctx context.Context, f *auth.RefreshFamily) error {
	if hook := s.beforeCreate; hook != nil {
		s.beforeCreate = nil
		hook()
	}
	return s.Tokens.CreateFamily(ctx, f)
}

// A login that races a disable or a delete: the admin's side (flag the user, then
// revoke their sessions) runs after the login checked the user and before it stored
// the session, so the revocation lists no session of the login. The login must fail
// and its session must be revoked, or it would work again once the user is enabled
// (or created again under the same id).
func TestALoginRacingADisableOrDeleteLeavesNoSession(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name        string
		act, undo   func(e *authEnv) error
		wantRefusal error
	}{
		{
			name:        "disable, then enable",
			act:         func(e *authEnv) error { _, err := e.users.SetDisabled(ctx, "acme", "alice", true); return err },
			undo:        func(e *authEnv) error { _, err := e.users.SetDisabled(ctx, "acme", "alice", false); return err },
			wantRefusal: auth.ErrUserDisabled,
		},
		{
			name: "delete, then create again",
			act:  func(e *authEnv) error { return e.users.Delete(ctx, "acme", "alice") },
			undo: func(e *authEnv) error {
				return e.users.Create(ctx, &auth.User{Tenant: "acme", ID: "alice", Tier: schemas.TierNormal})
			},
			wantRefusal: auth.ErrUserNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newAuthEnv(t)
			store := &racingTokens{Tokens: e.tokens}
			iss, err := auth.NewIssuer(e.keys, store, e.users)
			requireErr(t, err)
			store.beforeCreate = func() {
				requireErr(t, tc.act(e))
				n, err := iss.RevokeUser(ctx, "acme", "alice")
				requireErr(t, err)
				if n != 0 {
					t.Fatalf("test bug: the revocation found %d sessions; the race needs it to find none", n)
				}
			}

			pair, err := iss.Issue(ctx, "acme", "alice")
			if !errors.Is(err, tc.wantRefusal) {
				t.Errorf("the racing login returned %v, want %v", err, tc.wantRefusal)
			}
			if store.beforeCreate != nil {
				t.Fatal("test bug: the login stored no session, so nothing raced")
			}
			requireErr(t, tc.undo(e))
			fams, err := e.tokens.Families(ctx, "acme", "alice")
			requireErr(t, err)
			for _, f := range fams {
				if !f.Revoked {
					t.Errorf("the racing login's session %s is live", f.ID)
				}
			}
			if pair.AccessToken != "" {
				if _, _, err := iss.Verify(ctx, pair.AccessToken); err == nil {
					t.Error("the racing login's access token works for the user now")
				}
			}
		})
	}
}
