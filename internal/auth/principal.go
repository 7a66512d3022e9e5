package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/creativeai-studio/studio/schemas"
)

// Scope is one permission carried by a token or an API key.
type Scope string

// The scopes. ScopeAdmin implies every other scope, but only inside its own tenant.
const (
	// ScopeJobsWrite: submit and cancel jobs.
	ScopeJobsWrite Scope = "jobs:write"
	// ScopeJobsRead: read job records, progress, results and inputs.
	ScopeJobsRead Scope = "jobs:read"
	// ScopeKeysManage: create, list and revoke the tenant's API keys.
	ScopeKeysManage Scope = "keys:manage"
	// ScopeAdmin: manage the tenant's users (tiers, deletion, erasure).
	ScopeAdmin Scope = "admin"
)

// UserScopes is what a person gets unless an operator grants more.
var UserScopes = []Scope{ScopeJobsWrite, ScopeJobsRead, ScopeKeysManage}

// ParseScope checks that s names a known scope.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case ScopeJobsWrite, ScopeJobsRead, ScopeKeysManage, ScopeAdmin:
		return sc, nil
	}
	return "", fmt.Errorf("auth: unknown scope %q (want jobs:write, jobs:read, keys:manage or admin)", s)
}

// Principal is the authenticated caller of one request. Tenant isolation rests on
// Tenant: every lookup of a job, object or key is checked against it.
type Principal struct {
	Tenant string
	User   string
	Tier   schemas.Tier
	Scopes []Scope
	// KeyID is set when the caller authenticated with an API key, or with a ticket
	// minted with one (the key's id; the key acts for User, its owner).
	KeyID string
	// TokenID is the access token's id (jti) when the caller used a JWT.
	TokenID string
}

// Has reports whether p holds scope s (admin holds them all).
func (p Principal) Has(s Scope) bool {
	return slices.Contains(p.Scopes, s) || slices.Contains(p.Scopes, ScopeAdmin)
}

// ErrForbidden is returned by Require when a scope is missing: answer 403.
var ErrForbidden = errors.New("auth: permission denied")

// Require returns an error wrapping ErrForbidden unless p holds s.
func (p Principal) Require(s Scope) error {
	if p.Has(s) {
		return nil
	}
	return fmt.Errorf("%w: this needs the %s scope", ErrForbidden, s)
}

// Grantable returns an error wrapping ErrForbidden unless p holds every scope in
// scopes: nobody hands an API key more than they hold themselves.
func (p Principal) Grantable(scopes []Scope) error {
	for _, s := range scopes {
		if err := p.Require(s); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotVisible means the caller may not see the resource: it belongs to another
// tenant, or to another user of the caller's tenant and the caller is no tenant admin.
// Callers answer 404 (not 403), exactly as for a missing resource, so ids cannot be
// probed.
var ErrNotVisible = errors.New("auth: not found")

// CheckJob is the one visibility rule for jobs: it returns nil when rec belongs to p
// (same tenant and user) or when p holds the admin scope in rec's tenant, else
// ErrNotVisible. Every route that reads, downloads, cancels, follows or rates a job
// goes through it.
func CheckJob(p Principal, rec *schemas.JobRecord) error {
	if rec == nil || p.Tenant == "" || rec.Tenant != p.Tenant {
		return ErrNotVisible
	}
	if rec.User == p.User || slices.Contains(p.Scopes, ScopeAdmin) {
		return nil
	}
	return ErrNotVisible
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal stored by NewContext.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
