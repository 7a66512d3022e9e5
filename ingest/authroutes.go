package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
)

// LoginRequest is the body of POST /v1/auth/login.
type LoginRequest struct {
	Tenant string `json:"tenant" minLength:"1" maxLength:"64" doc:"the user's tenant"`
	User   string `json:"user" minLength:"1" maxLength:"64" doc:"the user id"`
}

// RefreshRequest is the body of POST /v1/auth/refresh.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token" minLength:"1" doc:"the refresh token of the last login or refresh"`
}

// LogoutRequest is the body of POST /v1/auth/logout.
type LogoutRequest struct {
	Token string `json:"token,omitempty" doc:"a refresh or access token of the session to end; empty ends the session of the bearer token"`
}

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Name       string       `json:"name,omitempty" maxLength:"100" doc:"what the key is for"`
	Scopes     []auth.Scope `json:"scopes,omitempty" doc:"jobs:write, jobs:read, keys:manage, admin; default jobs:write and jobs:read; never more than you hold"`
	ExpiresIn  string       `json:"expires_in,omitempty" doc:"lifetime as a Go duration (720h); empty: no expiry"`
	DailyQuota int          `json:"daily_quota,omitempty" minimum:"0" doc:"requests per UTC day; 0: no cap"`
}

// CreatedKey answers POST /v1/keys. Key is shown this once.
type CreatedKey struct {
	Key string `json:"key" doc:"the secret key, csk_...; it cannot be shown again"`
	auth.KeyInfo
}

// UserRequest is the body of POST /v1/users.
type UserRequest struct {
	ID     string       `json:"id" minLength:"1" maxLength:"64" doc:"user id: letters, digits, '-', '_'"`
	Tier   schemas.Tier `json:"tier,omitempty" enum:"premium,normal,free" doc:"default normal"`
	Scopes []auth.Scope `json:"scopes,omitempty" doc:"default jobs:write, jobs:read, keys:manage"`
}

// TierRequest is the body of PUT /v1/users/{id}/tier.
type TierRequest struct {
	Tier schemas.Tier `json:"tier" enum:"premium,normal,free"`
}

// registerAuthRoutes adds login, refresh, logout, API keys and user administration.
func (s *Service) registerAuthRoutes(api huma.API) {
	v := versioned{version: "v1", latest: true}
	tags := []string{"auth"}

	route(s, api, v, huma.Operation{OperationID: "login", Method: http.MethodPost, Path: "/auth/login", Tags: tags,
		Summary:     "Issue tokens for a user",
		Description: "Returns an access and a refresh token for an existing user. The caller must authenticate with an admin credential of the user's tenant (an API key with the admin scope, or the token `studio up` prints); with --auth-dev anyone may log in as any existing user. People never send passwords here: identity comes from an upstream login or an operator.",
		Errors:      []int{401, 403, 404, 422, 503},
		Metadata:    declare(scoped(auth.ScopeAdmin).openWithDevLogin().audited(auth.ActionLogin)),
	}, func(ctx context.Context, in *struct{ Body LoginRequest }) (*bodyOutput[auth.TokenPair], error) {
		// The declaration let through an admin (or, with --auth-dev, anyone); the admin
		// must be one of the user's tenant.
		if p := s.principal(ctx); !s.sec.DevLogin && p.Tenant != in.Body.Tenant {
			s.audit(ctx, auth.ActionLogin, "user/"+in.Body.Tenant+"/"+in.Body.User, auth.ResultDenied)
			return nil, problem(http.StatusForbidden, "forbidden", "only an admin of the tenant may issue tokens for its users")
		}
		pair, err := s.sec.Issuer.Issue(ctx, in.Body.Tenant, in.Body.User)
		if errors.Is(err, auth.ErrUserNotFound) {
			s.audit(ctx, auth.ActionLogin, "user/"+in.Body.Tenant+"/"+in.Body.User, auth.ResultDenied)
			return nil, problem(404, "user_not_found", fmt.Sprintf("no user %q in tenant %q", in.Body.User, in.Body.Tenant))
		}
		if errors.Is(err, auth.ErrUserDisabled) {
			s.audit(ctx, auth.ActionLogin, "user/"+in.Body.Tenant+"/"+in.Body.User, auth.ResultDenied)
			return nil, userDisabled(err)
		}
		if err != nil {
			return nil, s.asProblem(err, "login")
		}
		s.audit(ctx, auth.ActionLogin, "user/"+in.Body.Tenant+"/"+in.Body.User, auth.ResultAllowed)
		return &bodyOutput[auth.TokenPair]{Status: http.StatusOK, Body: pair}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "refresh", Method: http.MethodPost, Path: "/auth/refresh", Tags: tags,
		Summary:     "Rotate a refresh token",
		Description: "Returns a new token pair. Each refresh token works once: presenting an old one again revokes the whole session. A disabled user's refresh is refused (403 user_disabled).",
		Errors:      []int{401, 403, 503}, Metadata: declare(bodyCredential),
	}, func(ctx context.Context, in *struct{ Body RefreshRequest }) (*bodyOutput[auth.TokenPair], error) {
		pair, err := s.sec.Issuer.Refresh(ctx, in.Body.RefreshToken)
		if errors.Is(err, auth.ErrUserDisabled) {
			s.audit(ctx, auth.ActionTokenRefresh, "", auth.ResultDenied)
			return nil, userDisabled(err)
		}
		if err != nil {
			if errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, auth.ErrTokenRevoked) || errors.Is(err, auth.ErrUserNotFound) {
				s.audit(ctx, auth.ActionTokenRefresh, "", auth.ResultDenied)
				return nil, problem(http.StatusUnauthorized, "invalid_token", err.Error()+"; log in again")
			}
			return nil, s.asProblem(err, "refresh")
		}
		s.audit(ctx, auth.ActionTokenRefresh, "", auth.ResultAllowed)
		return &bodyOutput[auth.TokenPair]{Status: http.StatusOK, Body: pair}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "logout", Method: http.MethodPost, Path: "/auth/logout", Tags: tags,
		Summary: "End a session", Description: "Revokes the session of the given token (or of the bearer token): its refresh token and every access token of it stop working.",
		DefaultStatus: http.StatusNoContent, Errors: []int{400, 401, 503}, Metadata: declare(authenticated),
	}, func(ctx context.Context, in *struct{ Body LogoutRequest }) (*struct{}, error) {
		tok := in.Body.Token
		if tok == "" {
			_, r := exchangeFrom(ctx)
			tok, _ = auth.BearerToken(r.Header.Get("Authorization"))
			if auth.IsAPIKey(tok) {
				return nil, problem(http.StatusBadRequest, "not_a_session", "an API key has no session; revoke it with DELETE /v1/keys/{id}")
			}
		}
		if err := s.sec.Issuer.Logout(ctx, tok); err != nil {
			if errors.Is(err, auth.ErrInvalidToken) {
				return nil, problem(http.StatusUnauthorized, "invalid_token", err.Error())
			}
			return nil, s.asProblem(err, "logout")
		}
		s.audit(ctx, auth.ActionLogout, "", auth.ResultAllowed)
		return nil, nil
	})

	keyTags := []string{"keys"}
	route(s, api, v, huma.Operation{OperationID: "create-key", Method: http.MethodPost, Path: "/keys", Tags: keyTags,
		Summary: "Create an API key", Description: "A key for a program, acting for you with at most your scopes. The secret is returned once. A key with keys:manage may mint keys too: each holds a subset of its parent's scopes, expires no later and has no larger daily quota (both default to the parent's), chains are at most " + fmt.Sprint(auth.MaxKeyDepth) + " keys deep, and revoking a key revokes every key minted from it.",
		DefaultStatus: http.StatusCreated, Errors: []int{401, 403, 422, 503}, Metadata: declare(scoped(auth.ScopeKeysManage)),
	}, func(ctx context.Context, in *struct{ Body KeyRequest }) (*bodyOutput[CreatedKey], error) {
		p := s.principal(ctx)
		scopes := in.Body.Scopes
		if len(scopes) == 0 {
			scopes = []auth.Scope{auth.ScopeJobsWrite, auth.ScopeJobsRead}
		}
		for _, sc := range scopes {
			if _, err := auth.ParseScope(string(sc)); err != nil {
				return nil, problem(422, "invalid_scope", err.Error(), FieldProblem{Field: "scopes", Constraint: "enum", Message: err.Error()})
			}
		}
		if err := p.Grantable(scopes); err != nil {
			return nil, problem(http.StatusForbidden, "forbidden", err.Error())
		}
		var expires time.Time
		if in.Body.ExpiresIn != "" {
			d, err := time.ParseDuration(in.Body.ExpiresIn)
			if err != nil || d <= 0 {
				return nil, problem(422, "invalid_expiry", "expires_in is a positive duration such as 720h", FieldProblem{Field: "expires_in", Constraint: "format", Message: "a positive Go duration"})
			}
			expires = time.Now().Add(d)
		}
		u, err := s.sec.Users.Get(ctx, p.Tenant, p.User)
		if err != nil {
			return nil, s.userProblem(err, p.User)
		}
		dailyQuota := in.Body.DailyQuota
		var parent string
		if p.KeyID != "" {
			// A key minting a key: the child is bounded by its parent (scopes, expiry,
			// quota, depth) and dies with it.
			if expires, dailyQuota, err = s.childKeyTerms(ctx, p.KeyID, scopes, expires, dailyQuota); err != nil {
				return nil, err
			}
			parent = p.KeyID
		}
		rec, full, err := auth.NewAPIKey(p.Tenant, p.User, in.Body.Name, u.Tier, scopes, expires, dailyQuota, time.Now())
		if err != nil {
			return nil, problem(422, "invalid_key", err.Error())
		}
		rec.Parent = parent
		if err := s.sec.Keys.Create(ctx, rec); err != nil {
			return nil, s.asProblem(err, "create key")
		}
		s.audit(ctx, auth.ActionAPIKeyCreate, "api-key/"+rec.ID, auth.ResultAllowed)
		info := auth.KeyInfo{APIKey: *rec}
		info.Hash = ""
		return &bodyOutput[CreatedKey]{Status: http.StatusCreated, Body: CreatedKey{Key: full, KeyInfo: info}}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "list-keys", Method: http.MethodGet, Path: "/keys", Tags: keyTags,
		Summary: "List API keys", Description: "Your keys (an admin sees the tenant's), revoked ones included, with today's use.",
		Errors: []int{401, 403, 503}, Metadata: declare(scoped(auth.ScopeKeysManage)),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[[]auth.KeyInfo], error) {
		p := s.principal(ctx)
		all, err := s.sec.Keys.List(ctx, p.Tenant)
		if err != nil {
			return nil, s.asProblem(err, "list keys")
		}
		out := []auth.KeyInfo{}
		for _, k := range all {
			if k.Owner == p.User || p.Has(auth.ScopeAdmin) {
				out = append(out, k)
			}
		}
		return &bodyOutput[[]auth.KeyInfo]{Status: http.StatusOK, Body: out}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "revoke-key", Method: http.MethodDelete, Path: "/keys/{id}", Tags: keyTags,
		Summary: "Revoke an API key", Description: "The key, and every key minted from it, stops working at once on every replica: the WebSocket and SSE progress streams opened with them, or with tickets they minted, close (1008 / event: revoked).",
		DefaultStatus: http.StatusNoContent, Errors: []int{401, 403, 404, 503}, Metadata: declare(scoped(auth.ScopeKeysManage)),
	}, func(ctx context.Context, in *struct {
		ID string `path:"id"`
	}) (*struct{}, error) {
		p := s.principal(ctx)
		notFound := problem(404, "key_not_found", fmt.Sprintf("no API key %q", in.ID))
		k, err := s.sec.Keys.Get(ctx, in.ID)
		switch {
		case errors.Is(err, auth.ErrKeyNotFound):
			return nil, notFound
		case err != nil:
			return nil, s.asProblem(err, "revoke key")
		case k.Tenant != p.Tenant || (k.Owner != p.User && !p.Has(auth.ScopeAdmin)):
			return nil, notFound
		}
		if err := s.sec.Keys.Revoke(ctx, p.Tenant, in.ID); err != nil {
			if errors.Is(err, auth.ErrKeyNotFound) {
				return nil, notFound
			}
			return nil, s.asProblem(err, "revoke key")
		}
		s.audit(ctx, auth.ActionAPIKeyRevoke, "api-key/"+in.ID, auth.ResultAllowed)
		return nil, nil
	})

	s.registerUserRoutes(api, v)
}

// childKeyTerms bounds a key that the key parentID mints (auth.ChildKeyTerms) and
// answers 403 when the request asks for more than the parent has.
func (s *Service) childKeyTerms(ctx context.Context, parentID string, scopes []auth.Scope, expires time.Time, dailyQuota int) (time.Time, int, error) {
	parent, err := s.sec.Keys.Get(ctx, parentID)
	if err != nil {
		return time.Time{}, 0, s.asProblem(err, "create key")
	}
	depth, err := s.sec.Keys.Depth(ctx, parent)
	if err != nil {
		return time.Time{}, 0, s.asProblem(err, "create key")
	}
	if depth >= auth.MaxKeyDepth {
		return time.Time{}, 0, problem(http.StatusForbidden, "key_depth", fmt.Sprintf("key %s is %d keys deep; a chain of keys minted by keys is at most %d long", parent.ID, depth, auth.MaxKeyDepth))
	}
	expires, dailyQuota, err = auth.ChildKeyTerms(parent, scopes, expires, dailyQuota)
	if err != nil {
		return time.Time{}, 0, problem(http.StatusForbidden, "forbidden", err.Error())
	}
	return expires, dailyQuota, nil
}

// userProblem maps a user lookup error.
func (s *Service) userProblem(err error, id string) error {
	if errors.Is(err, auth.ErrUserNotFound) {
		return problem(404, "user_not_found", fmt.Sprintf("no user %q in your tenant", id))
	}
	return s.asProblem(err, "users")
}

type userPath struct {
	ID string `path:"id" doc:"user id"`
}

func (s *Service) registerUserRoutes(api huma.API, v versioned) {
	tags := []string{"users"}
	// admin declares a user route for the tenant's admins; a refusal is audited as action.
	admin := func(action string) map[string]any { return declare(scoped(auth.ScopeAdmin).audited(action)) }
	route(s, api, v, huma.Operation{OperationID: "list-users", Method: http.MethodGet, Path: "/users", Tags: tags,
		Summary: "List the tenant's users", Errors: []int{401, 403, 503}, Metadata: declare(scoped(auth.ScopeAdmin)),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[[]auth.User], error) {
		users, err := s.sec.Users.List(ctx, s.principal(ctx).Tenant)
		if err != nil {
			return nil, s.asProblem(err, "list users")
		}
		if users == nil {
			users = []auth.User{}
		}
		return &bodyOutput[[]auth.User]{Status: http.StatusOK, Body: users}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "create-user", Method: http.MethodPost, Path: "/users", Tags: tags,
		Summary: "Add a user to the tenant", DefaultStatus: http.StatusCreated, Errors: []int{401, 403, 409, 422, 503},
		Metadata: admin(auth.ActionUserCreate),
	}, func(ctx context.Context, in *struct{ Body UserRequest }) (*bodyOutput[auth.User], error) {
		p := s.principal(ctx)
		u := &auth.User{Tenant: p.Tenant, ID: in.Body.ID, Tier: in.Body.Tier, Scopes: in.Body.Scopes}
		if u.Tier == "" {
			u.Tier = schemas.TierNormal
		}
		if len(u.Scopes) == 0 {
			u.Scopes = append([]auth.Scope(nil), auth.UserScopes...)
		}
		if err := u.Validate(); err != nil {
			return nil, problem(422, "invalid_user", err.Error())
		}
		if err := s.sec.Users.Create(ctx, u); err != nil {
			if errors.Is(err, auth.ErrUserExists) {
				return nil, problem(http.StatusConflict, "user_exists", fmt.Sprintf("user %q already exists", u.ID))
			}
			return nil, s.asProblem(err, "create user")
		}
		s.audit(ctx, auth.ActionUserCreate, "user/"+u.ID, auth.ResultAllowed)
		return &bodyOutput[auth.User]{Status: http.StatusCreated, Body: *u}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "set-user-tier", Method: http.MethodPut, Path: "/users/{id}/tier", Tags: tags,
		Summary: "Change a user's tier", Description: "Applies to the user's next job submission; tokens show the new tier from their next refresh.",
		Errors: []int{401, 403, 404, 422, 503}, Metadata: admin(auth.ActionUserSetTier),
	}, func(ctx context.Context, in *struct {
		ID   string `path:"id" doc:"user id"`
		Body TierRequest
	}) (*bodyOutput[auth.User], error) {
		u, err := s.sec.Users.SetTier(ctx, s.principal(ctx).Tenant, in.ID, in.Body.Tier)
		if err != nil {
			return nil, s.userProblem(err, in.ID)
		}
		s.audit(ctx, auth.ActionUserSetTier, "user/"+in.ID, auth.ResultAllowed)
		return &bodyOutput[auth.User]{Status: http.StatusOK, Body: *u}, nil
	})
	route(s, api, v, huma.Operation{OperationID: "disable-user", Method: http.MethodPost, Path: "/users/{id}/disable", Tags: tags,
		Summary:     "Disable a user",
		Description: "Suspends the user at once on every replica and entry: their API keys, access tokens, refresh tokens and event-stream tickets are refused with 403 user_disabled, their sessions are revoked, their live WebSocket and SSE progress streams close within a second, and NATS submissions as them are refused. Jobs already accepted keep running and their results are kept. Idempotent; POST /v1/users/{id}/enable undoes it.",
		Errors:      []int{401, 403, 404, 409, 503}, Metadata: admin(auth.ActionUserDisable),
	}, func(ctx context.Context, in *userPath) (*bodyOutput[auth.User], error) {
		return s.setUserDisabled(ctx, in.ID, true)
	})
	route(s, api, v, huma.Operation{OperationID: "enable-user", Method: http.MethodPost, Path: "/users/{id}/enable", Tags: tags,
		Summary:     "Enable a disabled user",
		Description: "Lifts a disable: the user's API keys that were not revoked otherwise work again; sessions revoked by the disable stay revoked (log in again). Idempotent.",
		Errors:      []int{401, 403, 404, 503}, Metadata: admin(auth.ActionUserEnable),
	}, func(ctx context.Context, in *userPath) (*bodyOutput[auth.User], error) {
		return s.setUserDisabled(ctx, in.ID, false)
	})
	route(s, api, v, huma.Operation{OperationID: "delete-user", Method: http.MethodDelete, Path: "/users/{id}", Tags: tags,
		Summary: "Delete a user", Description: "Revokes the user's sessions and API keys and deletes the record; their jobs and data stay (DELETE /v1/users/{id}/data erases them).",
		DefaultStatus: http.StatusNoContent, Errors: []int{401, 403, 404, 503}, Metadata: admin(auth.ActionUserDelete),
	}, func(ctx context.Context, in *userPath) (*struct{}, error) {
		tenant := s.principal(ctx).Tenant
		if _, err := s.sec.Users.Get(ctx, tenant, in.ID); err != nil {
			return nil, s.userProblem(err, in.ID)
		}
		if _, err := s.sec.Issuer.RevokeUser(ctx, tenant, in.ID); err != nil {
			return nil, s.asProblem(err, "delete user")
		}
		// The id may be created again; the former user's keys must not act for it.
		if _, err := s.sec.Keys.RevokeOwnedBy(ctx, tenant, in.ID); err != nil {
			return nil, s.asProblem(err, "delete user")
		}
		if err := s.sec.Users.Delete(ctx, tenant, in.ID); err != nil {
			return nil, s.asProblem(err, "delete user")
		}
		s.audit(ctx, auth.ActionUserDelete, "user/"+in.ID, auth.ResultAllowed)
		return nil, nil
	})
	route(s, api, v, huma.Operation{OperationID: "erase-user", Method: http.MethodDelete, Path: "/users/{id}/data", Tags: tags,
		Summary:     "Erase a user's data (GDPR)",
		Description: "Deletes every object, record, message, API key and session of the user and asks the analytics sink to drop their rows. An admin may erase any user of the tenant; anyone may erase themselves with their own session (not with an API key). The answer lists what was removed; jobs still in flight are listed too: erase again once they end.",
		Errors:      []int{401, 403, 503},
		// Erasing an account takes the owner's own session or an admin: an API key acts
		// for its owner only as far as its purpose goes, and never erases them.
		Metadata: declare(scoped(auth.ScopeAdmin).orOwnSession("id").audited(actionUserErase)),
	}, func(ctx context.Context, in *userPath) (*bodyOutput[erasure.ErasureReport], error) {
		p := s.principal(ctx)
		if err := schemas.ValidToken(in.ID); err != nil {
			return nil, problem(422, "invalid_user", err.Error())
		}
		rep, err := s.sec.Eraser.Erase(ctx, p.Tenant, in.ID, erasure.WithRequestedBy(p.User))
		if err != nil {
			s.audit(ctx, actionUserErase, "user/"+in.ID, auth.ResultError)
			return nil, s.asProblem(err, "erase user")
		}
		s.forgetStorage(ctx, p.Tenant) // the tenant's next admission counts what is left
		// No audit event here: it would name the user the erasure just removed. The
		// ErasureRequest the Eraser published (who, whom, when) is the erasure's record.
		return &bodyOutput[erasure.ErasureReport]{Status: http.StatusOK, Body: *rep}, nil
	})
}

// setUserDisabled disables or enables a user of the caller's tenant for the disable and
// enable routes (declared admin only). Disabling sets the flag first, so every
// credential is refused from that write on, and then revokes the user's sessions;
// nobody disables themselves (409), which would lock the tenant's last admin out.
func (s *Service) setUserDisabled(ctx context.Context, id string, disabled bool) (*bodyOutput[auth.User], error) {
	action := auth.ActionUserEnable
	if disabled {
		action = auth.ActionUserDisable
	}
	p := s.principal(ctx)
	if disabled && id == p.User {
		return nil, problem(http.StatusConflict, "disable_self", "you cannot disable yourself; ask another admin of the tenant")
	}
	u, err := s.sec.Users.SetDisabled(ctx, p.Tenant, id, disabled)
	if err != nil {
		return nil, s.userProblem(err, id)
	}
	if disabled {
		if _, err := s.sec.Issuer.RevokeUser(ctx, p.Tenant, id); err != nil {
			return nil, s.asProblem(err, "disable user")
		}
	}
	s.audit(ctx, action, "user/"+id, auth.ResultAllowed)
	return &bodyOutput[auth.User]{Status: http.StatusOK, Body: *u}, nil
}
