package auth

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoCredentials: the request carried no Authorization header (answer 401 with
// WWW-Authenticate: Bearer).
var ErrNoCredentials = errors.New("auth: no credentials")

// KeyAuthenticator checks a presented API key, counts its use and enforces its daily
// quota; auth.APIKeys implements it.
type KeyAuthenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// TokenVerifier checks an access token; *Issuer implements it.
type TokenVerifier interface {
	Verify(ctx context.Context, accessToken string) (Principal, *Claims, error)
}

// Authenticator turns the Authorization header of a request into a Principal and
// audits the decision (action "authenticate"). Bearer values starting with
// APIKeyPrefix are API keys, anything else is a JWT. Safe for concurrent use.
type Authenticator struct {
	Tokens TokenVerifier
	Keys   KeyAuthenticator
	Audit  Auditor
	// Users, when set, is asked whether the credential's user still exists and is
	// enabled: deleting or disabling a user stops every key and token of theirs at once,
	// on every route and entry.
	Users UserStore
}

// Authenticate returns the caller. Errors: ErrNoCredentials, ErrInvalidToken or
// ErrInvalidKey (401), ErrUserDisabled (403), a *quota.Exceeded for a key over its daily quota (429), or an
// infrastructure error (503). If the decision cannot be audited the request is refused:
// an unaudited request is not let through.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string, r Request) (Principal, error) {
	p, err := a.check(ctx, authorization)
	result := ResultAllowed
	switch {
	case err == nil:
	case errors.Is(err, ErrNoCredentials), errors.Is(err, ErrInvalidToken), errors.Is(err, ErrInvalidKey), errors.Is(err, ErrUserDisabled):
		result = ResultDenied
	default:
		var q interface{ Code() string }
		if errors.As(err, &q) {
			result = ResultDenied
		} else {
			result = ResultError
		}
	}
	resource := ""
	if p.KeyID != "" {
		resource = "api-key/" + p.KeyID
	}
	if a.Audit != nil {
		if aerr := a.Audit.Audit(ctx, Event(p, ActionAuthenticate, resource, result, r)); aerr != nil {
			return Principal{}, fmt.Errorf("auth: audit unavailable, request refused: %w", aerr)
		}
	}
	if err != nil {
		return Principal{}, err
	}
	return p, nil
}

func (a *Authenticator) check(ctx context.Context, authorization string) (Principal, error) {
	if authorization == "" {
		return Principal{}, ErrNoCredentials
	}
	tok, ok := BearerToken(authorization)
	if !ok {
		return Principal{}, fmt.Errorf("%w: use the Authorization: Bearer scheme", ErrInvalidToken)
	}
	if IsAPIKey(tok) {
		if a.Keys == nil {
			return Principal{}, fmt.Errorf("%w: API keys are not accepted here", ErrInvalidKey)
		}
		p, err := a.Keys.Authenticate(ctx, tok)
		if err != nil {
			return p, err
		}
		return p, a.userActive(ctx, p, ErrInvalidKey)
	}
	if a.Tokens == nil {
		return Principal{}, fmt.Errorf("%w: tokens are not accepted here", ErrInvalidToken)
	}
	p, _, err := a.Tokens.Verify(ctx, tok)
	if err != nil {
		return p, err
	}
	return p, a.userActive(ctx, p, ErrInvalidToken)
}

// userActive returns an error wrapping refused when p's user has been deleted, and one
// wrapping ErrUserDisabled while it is disabled.
func (a *Authenticator) userActive(ctx context.Context, p Principal, refused error) error {
	if a.Users == nil {
		return nil
	}
	u, err := a.Users.Get(ctx, p.Tenant, p.User)
	if errors.Is(err, ErrUserNotFound) {
		return fmt.Errorf("%w: %w: the user no longer exists", refused, ErrTokenRevoked)
	}
	if err != nil {
		return err
	}
	return u.CheckEnabled()
}
