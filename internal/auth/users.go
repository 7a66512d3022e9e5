package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// Errors of user stores.
var (
	ErrUserNotFound = errors.New("auth: user not found")
	ErrUserExists   = errors.New("auth: user already exists")
)

// User is a person (or service account) of one tenant. Ids are unique per tenant and
// are subject tokens (letters, digits, '-', '_'), so no e-mail address or name is ever
// needed to identify someone.
type User struct {
	Tenant    string       `json:"tenant"`
	ID        string       `json:"id"`
	Tier      schemas.Tier `json:"tier"`
	Scopes    []Scope      `json:"scopes"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// Validate reports the first problem that makes u unstorable.
func (u *User) Validate() error {
	if err := schemas.ValidToken(u.Tenant); err != nil {
		return fmt.Errorf("auth: tenant: %w", err)
	}
	if err := schemas.ValidToken(u.ID); err != nil {
		return fmt.Errorf("auth: user id: %w", err)
	}
	if !u.Tier.Valid() {
		return fmt.Errorf("auth: tier %q is not one of premium, normal, free", u.Tier)
	}
	for _, s := range u.Scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return err
		}
	}
	return nil
}

// Principal returns the principal of u acting with its own scopes.
func (u *User) Principal() Principal {
	return Principal{Tenant: u.Tenant, User: u.ID, Tier: u.Tier, Scopes: append([]Scope(nil), u.Scopes...)}
}

// UserStore keeps users; auth.Users implements it on the KV bucket "users".
type UserStore interface {
	// Create stores a new user; ErrUserExists if the id is taken in the tenant.
	Create(ctx context.Context, u *User) error
	// Get returns a user or ErrUserNotFound.
	Get(ctx context.Context, tenant, id string) (*User, error)
}

// The development identity: the same tenant and user that ingest assumes while
// authentication is off, so jobs submitted before and after switching it on line up.
const (
	DevTenant = "local"
	DevUser   = "local"
)

// DevBootstrap makes sure the development user exists (tenant "local", user "local",
// premium, every scope) and returns a fresh access token for it, for `studio up` to
// print. There is no password anywhere: whoever can read the terminal of the process
// that holds the signing key is the developer. Never call it in production.
func DevBootstrap(ctx context.Context, users UserStore, issuer *Issuer) (string, error) {
	u := &User{
		Tenant: DevTenant, ID: DevUser, Tier: schemas.TierPremium,
		Scopes: []Scope{ScopeJobsWrite, ScopeJobsRead, ScopeKeysManage, ScopeAdmin},
	}
	if err := users.Create(ctx, u); err != nil && !errors.Is(err, ErrUserExists) {
		return "", fmt.Errorf("auth: create the development user: %w", err)
	}
	pair, err := issuer.Issue(ctx, DevTenant, DevUser)
	if err != nil {
		return "", err
	}
	return pair.AccessToken, nil
}
