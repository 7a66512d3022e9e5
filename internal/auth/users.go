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
	// ErrUserDisabled: the user exists but an admin disabled it; every credential of
	// theirs is refused (answer 403 user_disabled) until it is enabled again.
	ErrUserDisabled = errors.New("auth: user disabled")
)

// User is a person (or service account) of one tenant. Ids are unique per tenant and
// are subject tokens (letters, digits, '-', '_'), so no e-mail address or name is ever
// needed to identify someone.
type User struct {
	Tenant string       `json:"tenant"`
	ID     string       `json:"id"`
	Tier   schemas.Tier `json:"tier"`
	Scopes []Scope      `json:"scopes"`
	// Disabled suspends the user: every API key, token, refresh and ticket of theirs is
	// refused and their live event streams close, until an admin enables them again.
	Disabled   bool       `json:"disabled,omitempty"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
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

// CheckEnabled returns an error wrapping ErrUserDisabled when u is disabled: the one
// rule every entry (HTTP, NATS, refresh, tickets, event streams) applies.
func (u *User) CheckEnabled() error {
	if u.Disabled {
		return fmt.Errorf("%w: user %s of tenant %s is disabled; an admin of the tenant enables it again", ErrUserDisabled, u.ID, u.Tenant)
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
