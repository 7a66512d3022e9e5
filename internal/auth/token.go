package auth

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/creativeai-studio/studio/schemas"
)

// Token errors. Every refused token wraps ErrInvalidToken (answer 401); an expired one
// also wraps ErrTokenExpired (the client should refresh) and a revoked one
// ErrTokenRevoked (the client must log in again).
var (
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrTokenExpired = errors.New("auth: token expired")
	ErrTokenRevoked = errors.New("auth: token revoked")
	// ErrRefreshReused: a refresh token was presented after it had been rotated. Either
	// the client retried a refresh or the token was stolen; the whole family (every
	// token descended from that login) is revoked, which stops a thief and the victim
	// alike until the victim logs in again.
	ErrRefreshReused = errors.New("auth: refresh token reused; the session was revoked")
)

// TokenUse tells access and refresh tokens apart; each is refused where the other is
// expected.
type TokenUse string

// The token uses.
const (
	UseAccess  TokenUse = "access"
	UseRefresh TokenUse = "refresh"
)

// Claims are the JWT claims of both token uses. sub is the user id, jti the token id.
type Claims struct {
	jwt.RegisteredClaims
	Tenant string       `json:"tnt"`
	Tier   schemas.Tier `json:"tier,omitempty"`
	Scopes []Scope      `json:"scp,omitempty"`
	Use    TokenUse     `json:"token_use"`
	// Family is the refresh-token family: one login and every token rotated from it.
	Family string `json:"fam"`
	// Jobs are the job ids a ticket (UseTicket) may follow.
	Jobs []string `json:"jobs,omitempty"`
	// Key is the id of the API key a ticket was minted with: the stream it opens ends
	// when that key is revoked.
	Key string `json:"key,omitempty"`
}

// TokenPair is what a login or refresh returns, shaped like an OAuth 2 token response.
type TokenPair struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
}

// RefreshFamily is the server-side state of one login: which refresh token is the
// current one. Rotation replaces Current; presenting any other token of the family
// revokes it.
type RefreshFamily struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	User      string    `json:"user"`
	Current   string    `json:"current"`
	Revoked   bool      `json:"revoked,omitempty"`
	Rotations int       `json:"rotations,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// TokenStore keeps refresh families and the deny list; auth.Tokens implements it on
// the KV buckets "refresh" and "revoked". All methods are safe across replicas.
type TokenStore interface {
	// CreateFamily stores a new family.
	CreateFamily(ctx context.Context, f *RefreshFamily) error
	// UpdateFamily applies fn to the family and writes it back with compare-and-swap,
	// retrying on conflicts. An error from fn aborts without writing and is returned.
	// A family that does not exist (expired, erased) gives ErrTokenRevoked.
	UpdateFamily(ctx context.Context, tenant, user, id string, fn func(*RefreshFamily) error) (*RefreshFamily, error)
	// Families lists a user's families.
	Families(ctx context.Context, tenant, user string) ([]RefreshFamily, error)
	// Deny puts id on the deny list until the given time (a per-key TTL).
	Deny(ctx context.Context, id string, until time.Time) error
	// Denied reports whether any of ids is on the deny list.
	Denied(ctx context.Context, ids ...string) (bool, error)
	// Claim puts id on the deny list until the given time and reports whether this
	// call put it there: of any number of concurrent claims on any replicas, exactly
	// one gets true (single-use tickets).
	Claim(ctx context.Context, id string, until time.Time) (bool, error)
}

// Token lifetimes.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
	// MaxRefreshTTL is the longest refresh lifetime: the KV bucket "refresh" forgets
	// families that long after their last rotation (auth.BucketRefresh).
	MaxRefreshTTL = 7 * 24 * time.Hour
	// Leeway absorbs clock differences between replicas when checking exp, nbf and iat.
	Leeway = 30 * time.Second
)

// Issuer mints, rotates, verifies and revokes JWTs for people. Safe for concurrent use;
// every decision that must hold across replicas (rotation, reuse detection, revocation)
// is made by a compare-and-swap in the TokenStore.
type Issuer struct {
	keys       *KeySet
	store      TokenStore
	users      UserStore
	name       string
	audience   string
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
}

// IssuerOption configures NewIssuer.
type IssuerOption func(*Issuer)

// WithAccessTTL sets the access token lifetime (default 15 minutes).
func WithAccessTTL(d time.Duration) IssuerOption { return func(i *Issuer) { i.accessTTL = d } }

// WithRefreshTTL sets the refresh token lifetime (default and maximum 7 days).
func WithRefreshTTL(d time.Duration) IssuerOption { return func(i *Issuer) { i.refreshTTL = d } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) IssuerOption { return func(i *Issuer) { i.now = now } }

// WithIssuerName sets the iss claim (default "studio") and the aud claim it implies
// ("<name>-api").
func WithIssuerName(name string) IssuerOption {
	return func(i *Issuer) { i.name, i.audience = name, name+"-api" }
}

// NewIssuer returns an issuer signing with keys.Active().
func NewIssuer(keys *KeySet, store TokenStore, users UserStore, opts ...IssuerOption) (*Issuer, error) {
	i := &Issuer{
		keys: keys, store: store, users: users, name: "studio", audience: "studio-api",
		accessTTL: DefaultAccessTTL, refreshTTL: DefaultRefreshTTL, now: time.Now,
	}
	for _, o := range opts {
		o(i)
	}
	switch {
	case keys == nil || store == nil || users == nil:
		return nil, errors.New("auth: NewIssuer needs keys, a token store and a user store")
	case i.accessTTL < time.Second || i.accessTTL > time.Hour:
		return nil, fmt.Errorf("auth: access token lifetime %s: want 1s to 1h", i.accessTTL)
	case i.refreshTTL < i.accessTTL || i.refreshTTL > MaxRefreshTTL:
		return nil, fmt.Errorf("auth: refresh token lifetime %s: want between the access lifetime and %s", i.refreshTTL, MaxRefreshTTL)
	}
	return i, nil
}

// AccessTTL returns the access token lifetime.
func (i *Issuer) AccessTTL() time.Duration { return i.accessTTL }

// Issue starts a new login for a user the caller has authenticated by other means (the
// dev bootstrap, an operator's `studio users token`, later an identity provider).
func (i *Issuer) Issue(ctx context.Context, tenant, user string) (TokenPair, error) {
	u, err := i.users.Get(ctx, tenant, user)
	if err != nil {
		return TokenPair{}, err
	}
	if err := u.CheckEnabled(); err != nil {
		return TokenPair{}, err
	}
	now := i.now()
	fam := &RefreshFamily{
		ID: NewTokenID(), Tenant: u.Tenant, User: u.ID, Current: NewTokenID(),
		CreatedAt: now.UTC(), ExpiresAt: now.Add(i.refreshTTL).UTC(),
	}
	if err := i.store.CreateFamily(ctx, fam); err != nil {
		return TokenPair{}, err
	}
	// A disable or delete that ran between the check above and CreateFamily listed the
	// sessions before this one existed and so did not revoke it: read the user again.
	again, err := i.users.Get(ctx, tenant, user)
	if err == nil {
		err = again.CheckEnabled()
	}
	if err != nil {
		if rerr := i.revokeFamily(ctx, u.Tenant, u.ID, fam.ID); rerr != nil {
			return TokenPair{}, errors.Join(err, rerr)
		}
		return TokenPair{}, err
	}
	return i.pair(u, fam.ID, fam.Current, now)
}

// Refresh rotates a refresh token: the presented token stops working and a new pair is
// returned. The user record is read again, so tier and scope changes apply here, and a
// deleted or disabled user cannot refresh (ErrUserDisabled). Presenting an already rotated token revokes the family
// and returns ErrRefreshReused.
func (i *Issuer) Refresh(ctx context.Context, refreshToken string) (TokenPair, error) {
	c, err := i.parse(refreshToken, UseRefresh)
	if err != nil {
		return TokenPair{}, err
	}
	if denied, err := i.store.Denied(ctx, DenyKeyFamily(c.Family)); err != nil {
		return TokenPair{}, err
	} else if denied {
		return TokenPair{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenRevoked)
	}
	u, err := i.users.Get(ctx, c.Tenant, c.Subject)
	if errors.Is(err, ErrUserNotFound) {
		_ = i.revokeFamily(ctx, c.Tenant, c.Subject, c.Family)
		return TokenPair{}, fmt.Errorf("%w: %w: the user no longer exists", ErrInvalidToken, ErrTokenRevoked)
	}
	if err != nil {
		return TokenPair{}, err
	}
	if err := u.CheckEnabled(); err != nil {
		return TokenPair{}, err
	}
	now := i.now()
	next := NewTokenID()
	reused := false
	fam, err := i.store.UpdateFamily(ctx, c.Tenant, c.Subject, c.Family, func(f *RefreshFamily) error {
		reused = false
		switch {
		case f.Revoked:
			return fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenRevoked)
		case f.Current != c.ID:
			f.Revoked, reused = true, true
		default:
			f.Current = next
			f.ExpiresAt = now.Add(i.refreshTTL).UTC()
			f.Rotations++
		}
		return nil
	})
	if err != nil {
		return TokenPair{}, err
	}
	if reused {
		if err := i.store.Deny(ctx, DenyKeyFamily(fam.ID), fam.ExpiresAt.Add(Leeway)); err != nil {
			return TokenPair{}, err
		}
		return TokenPair{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrRefreshReused)
	}
	return i.pair(u, fam.ID, next, now)
}

// Verify checks an access token (signature, kid, expiry, issuer, audience, use) and the
// deny list (its jti and its family), and returns the caller.
func (i *Issuer) Verify(ctx context.Context, accessToken string) (Principal, *Claims, error) {
	c, err := i.parse(accessToken, UseAccess)
	if err != nil {
		return Principal{}, nil, err
	}
	denied, err := i.store.Denied(ctx, DenyKeyToken(c.ID), DenyKeyFamily(c.Family))
	if err != nil {
		return Principal{}, nil, err
	}
	if denied {
		return Principal{}, nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenRevoked)
	}
	return Principal{Tenant: c.Tenant, User: c.Subject, Tier: c.Tier, Scopes: c.Scopes, TokenID: c.ID}, c, nil
}

// Logout ends the session a token belongs to. Given an access token, its jti goes on
// the deny list until it expires; given either kind, its family is revoked, so the
// refresh token and every access token of that login stop working. An expired or
// invalid token is refused with ErrInvalidToken.
func (i *Issuer) Logout(ctx context.Context, token string) error {
	c, err := i.parse(token, "")
	if err != nil {
		return err
	}
	if c.Use == UseAccess {
		if err := i.store.Deny(ctx, DenyKeyToken(c.ID), c.ExpiresAt.Add(Leeway)); err != nil {
			return err
		}
	}
	return i.revokeFamily(ctx, c.Tenant, c.Subject, c.Family)
}

// RevokeUser revokes every session of a user (after a tier change, deletion or a
// suspected compromise) and returns how many were live.
func (i *Issuer) RevokeUser(ctx context.Context, tenant, user string) (int, error) {
	fams, err := i.store.Families(ctx, tenant, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range fams {
		if f.Revoked {
			continue
		}
		if err := i.revokeFamily(ctx, tenant, user, f.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (i *Issuer) revokeFamily(ctx context.Context, tenant, user, id string) error {
	fam, err := i.store.UpdateFamily(ctx, tenant, user, id, func(f *RefreshFamily) error {
		f.Revoked = true
		return nil
	})
	until := i.now().Add(i.refreshTTL)
	if err == nil {
		until = fam.ExpiresAt
	} else if !errors.Is(err, ErrTokenRevoked) {
		return err
	}
	// The deny entry also stops the family's access tokens, which are not stored.
	return i.store.Deny(ctx, DenyKeyFamily(id), until.Add(Leeway))
}

func (i *Issuer) pair(u *User, family, refreshID string, now time.Time) (TokenPair, error) {
	base := func(id string, ttl time.Duration, use TokenUse) Claims {
		return Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: i.name, Subject: u.ID, Audience: jwt.ClaimStrings{i.audience}, ID: id,
				IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
				ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			},
			Tenant: u.Tenant, Use: use, Family: family,
		}
	}
	access := base(NewTokenID(), i.accessTTL, UseAccess)
	access.Tier, access.Scopes = u.Tier, u.Scopes
	at, err := i.sign(access)
	if err != nil {
		return TokenPair{}, err
	}
	rt, err := i.sign(base(refreshID, i.refreshTTL, UseRefresh))
	if err != nil {
		return TokenPair{}, err
	}
	return TokenPair{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: int(i.accessTTL / time.Second),
		RefreshToken: rt, RefreshExpiresIn: int(i.refreshTTL / time.Second),
	}, nil
}

func (i *Issuer) sign(c Claims) (string, error) {
	k := i.keys.Active()
	var m jwt.SigningMethod = jwt.SigningMethodEdDSA
	if k.Alg == HS256 {
		m = jwt.SigningMethodHS256
	}
	t := jwt.NewWithClaims(m, c)
	t.Header["kid"] = k.ID
	s, err := t.SignedString(k.signingKey())
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// parse verifies a token; want "" accepts either use.
func (i *Issuer) parse(token string, want TokenUse) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := i.keys.Lookup(kid)
		if !ok {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		if t.Method.Alg() != string(k.Alg) {
			return nil, fmt.Errorf("key %s signs with %s, the token claims %s", kid, k.Alg, t.Method.Alg())
		}
		return k.verifyingKey(), nil
	},
		jwt.WithValidMethods([]string{string(EdDSA), string(HS256)}),
		jwt.WithIssuer(i.name), jwt.WithAudience(i.audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(i.now),
	)
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	switch {
	case c.ID == "" || c.Subject == "" || c.Tenant == "" || (c.Family == "" && c.Use != UseTicket):
		return nil, fmt.Errorf("%w: missing jti, sub, tnt or fam", ErrInvalidToken)
	case want != "" && c.Use != want:
		return nil, fmt.Errorf("%w: a %s token was given where a %s token is needed", ErrInvalidToken, c.Use, want)
	case c.Use != UseAccess && c.Use != UseRefresh && (c.Use != UseTicket || want != UseTicket):
		return nil, fmt.Errorf("%w: unknown token_use %q", ErrInvalidToken, c.Use)
	}
	return &c, nil
}

// DenyKeyToken and DenyKeyFamily name the deny-list entries of one access token and of
// one login (family); the TokenStore treats them as opaque keys.
func DenyKeyToken(jti string) string { return "jti." + jti }

// DenyKeyFamily names the deny-list entry of a refresh-token family; see DenyKeyToken.
func DenyKeyFamily(fam string) string { return "fam." + fam }

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewTokenID returns 128 random bits as 26 lower-case characters, usable as a KV key
// and a subject token.
func NewTokenID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b)
}

// BearerToken returns the token of an "Authorization: Bearer …" header value.
func BearerToken(header string) (string, bool) {
	scheme, tok, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
