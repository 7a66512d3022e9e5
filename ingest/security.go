package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
)

// Security turns authentication, tenant isolation, fairness and audit on for the HTTP
// API and the NATS entry (see WithSecurity and Admit). Every field is required; all are safe for concurrent use.
type Security struct {
	// Authenticator checks bearer tokens and API keys and audits each decision.
	Authenticator *auth.Authenticator
	Issuer        *auth.Issuer
	Users         *auth.Users
	Keys          *auth.APIKeys
	Eraser        *erasure.Eraser
	Limiter       *quota.RateLimiter
	Active        *quota.ActiveJobs
	Audit         auth.Auditor
	// Storage is the per-tenant storage quota, applied at admission and to uploads;
	// nil: none.
	Storage *quota.Storage
	// Policy holds the per-tier limits: requests per hour and active jobs.
	Policy quota.Policy
	// DevLogin lets POST /v1/auth/login issue tokens for any existing user without an
	// admin credential (development only: `studio up --auth-dev`).
	DevLogin bool
	// OperatorTenant is the tenant whose admins may use the routes that span every
	// tenant (Access.Operator: the operations analytics, global rollouts); empty:
	// Config.DefaultTenant ("local", the tenant of `studio up`'s development user).
	OperatorTenant string
	// NATSAccounts maps a NATS account to a tenant (--nats-accounts): a NATS request
	// from a user of that account is a job of the studio user of the same name
	// (natsCaller). Read-only once the service runs.
	NATSAccounts map[string]string
}

// WithSecurity turns on the access each route declares (access.go: a bearer token or
// API key, with a scope, on every route but health, docs, the web pages, presigned
// uploads and login/refresh) and requires a credential on every NATS submission; jobs
// belong to the caller's tenant and user. Without it every HTTP caller is
// Config.DefaultTenant/DefaultUser and NATS requests name their own.
func WithSecurity(sec *Security) Option { return func(s *Service) { s.sec = sec } }

// Security returns what WithSecurity set, or nil while authentication is off.
func (s *Service) Security() *Security { return s.sec }

// The erasure action is not among auth's actions: erasure is audited here and by the
// ErasureRequest the Eraser publishes.
const actionUserErase = "user-erase"

// opsAPIPrefix is where the operations dashboard reads its data (tenant names, counts,
// ratings): its routes are declared for operators, the admin scope (mountPages).
const opsAPIPrefix = "/ops/api/"

// analyticsLimited charges an analytics request (analyticsRequest) to the caller's
// analytics budget (chargeAnalytics) before next reads its body, and answers 429 with
// Retry-After over it. authorize has already required the admin scope (mountPages);
// while security is off every caller is unlimited.
func (s *Service) analyticsLimited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.sec != nil && analyticsRequest(r) {
			if prob, retry := s.chargeAnalytics(r.Context()); prob != nil {
				if retry != "" {
					w.Header().Set("Retry-After", retry)
				}
				writeProblem(w, r, prob)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// analyticsRequest reports whether r queries the analytics store: the business report
// and the SQL box (`studio sql`).
func analyticsRequest(r *http.Request) bool {
	switch {
	// HEAD runs the GET handler (net/http's GET patterns match it) and so the query.
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == opsAPIPrefix+"business",
		r.Method == http.MethodPost && r.URL.Path == opsAPIPrefix+"sql":
		return true
	}
	return false
}

// chargeAnalytics counts one analytics request of the caller against
// Policy.AnalyticsWindow, a budget of its own (the job-request budget is untouched),
// and returns the refusal (429 rate_limited with the Retry-After seconds) or nil.
func (s *Service) chargeAnalytics(ctx context.Context) (*Problem, string) {
	p := s.principal(ctx)
	d, err := s.sec.Limiter.AllowFor(ctx, p.Tenant, p.User, quota.PurposeAnalytics, s.sec.Policy.AnalyticsWindow())
	if err != nil {
		return s.refusal(fmt.Errorf("analytics rate limit: %w", err), opsAPIPrefix)
	}
	if !d.Allowed {
		return s.refusal(d.Err(), opsAPIPrefix)
	}
	return nil, ""
}

// authenticate runs before the mux when security is on. It checks the credential of
// a request whose route (its declared Access in routes) looks at one, before anything
// else: a route that needs one and gets none or a bad one is answered 401 (429, 503)
// here; public routes, signed URLs and body credentials are passed on without a look at
// the header; a request that matches no route needs a credential. It returns the
// request to serve, carrying the principal, or nil after answering itself. The scope is
// checked after the mux, by authorize, from the same declaration.
func (s *Service) authenticate(w http.ResponseWriter, r *http.Request, routes *routeTable) *http.Request {
	header := r.Header.Get("Authorization")
	if header == "" {
		// Browsers cannot set headers on WebSocket or EventSource requests: event
		// streams take a single-use ticket in the query instead (tickets.go).
		if r = s.queryCredential(w, r); r == nil {
			return nil
		}
		if _, ok := auth.FromContext(r.Context()); ok {
			return r
		}
	}
	a := routes.lookup(r)
	if !a.checksCredential() || (header == "" && a.DevLogin && s.sec.DevLogin) {
		return r
	}
	p, err := s.sec.Authenticator.Authenticate(r.Context(), header, s.auditRequest(r))
	if err == nil {
		return r.WithContext(auth.NewContext(r.Context(), p))
	}
	prob, h := s.credentialRefusal(err, RequestIDFrom(r.Context()))
	for k, v := range h {
		w.Header()[k] = v
	}
	writeProblem(w, r, prob)
	return nil
}

// credentialRefusal renders an Authenticator error for any transport (HTTP, NATS):
// the problem (401, 403 user_disabled, 429 or 503) and the headers that go with it (WWW-Authenticate,
// Retry-After).
func (s *Service) credentialRefusal(err error, requestID string) (*Problem, http.Header) {
	h := http.Header{}
	var ex *quota.Exceeded
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		h.Set("WWW-Authenticate", `Bearer realm="studio"`)
		return problem(http.StatusUnauthorized, "unauthenticated",
			"send Authorization: Bearer <access token or API key>; get a token from POST /v1/auth/login"), h
	case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrInvalidKey):
		h.Set("WWW-Authenticate", `Bearer realm="studio", error="invalid_token"`)
		return problem(http.StatusUnauthorized, "invalid_token",
			err.Error()+"; refresh the token (POST /v1/auth/refresh) or log in again"), h
	case errors.Is(err, auth.ErrUserDisabled):
		return userDisabled(err), h
	case errors.As(err, &ex):
		h.Set("Retry-After", quota.RetryAfterSeconds(ex.RetryAfter))
		return problem(http.StatusTooManyRequests, ex.Code(), ex.Error()), h
	}
	s.log.WithError(err).WithField("request_id", requestID).Error("authentication failed")
	return problem(http.StatusServiceUnavailable, "unavailable", "credentials could not be checked; retry shortly"), h
}

func (s *Service) auditRequest(r *http.Request) auth.Request {
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	id := RequestIDFrom(r.Context())
	return auth.Request{IP: ip, RequestID: id, TraceID: traceIDFor(id)}
}

// principal returns the caller: the authenticated principal, or the default tenant
// and user with every scope while security is off.
func (s *Service) principal(ctx context.Context) auth.Principal {
	if p, ok := auth.FromContext(ctx); ok {
		return p
	}
	return auth.Principal{Tenant: s.cfg.DefaultTenant, User: s.cfg.DefaultUser, Scopes: []auth.Scope{auth.ScopeAdmin}}
}

// audit records a decision; a failure is logged, the request goes on (it was already
// authenticated, which refuses unaudited requests).
func (s *Service) audit(ctx context.Context, action, resource, result string) {
	if s.sec == nil || s.sec.Audit == nil {
		return
	}
	var req auth.Request
	if _, r := exchangeFrom(ctx); r != nil {
		req = s.auditRequest(r)
	}
	if err := s.sec.Audit.Audit(ctx, auth.Event(s.principal(ctx), action, resource, result, req)); err != nil {
		s.log.WithError(err).WithField("action", action).Error("audit event lost")
	}
}

// activeUser returns the user's record, or a 403 problem when the user no longer
// exists (user_not_found) or is disabled (user_disabled). Admit and every route that stores something for a user call it, so a deleted
// or erased user's credentials and signed URLs create nothing. With security off there
// is no user store and it returns nil, nil.
func (s *Service) activeUser(ctx context.Context, tenant, user string) (*auth.User, error) {
	if s.sec == nil {
		return nil, nil
	}
	u, err := s.sec.Users.Get(ctx, tenant, user)
	switch {
	case errors.Is(err, auth.ErrUserNotFound):
		return nil, problem(http.StatusForbidden, "user_not_found", "this user no longer exists, so its credentials create nothing; ask an admin of your tenant")
	case err != nil:
		return nil, s.asProblem(err, "user lookup")
	}
	if err := u.CheckEnabled(); err != nil {
		return nil, userDisabled(err)
	}
	return u, nil
}

// userDisabled is the answer to every credential of a disabled user, on every entry.
func userDisabled(err error) *Problem {
	return problem(http.StatusForbidden, "user_disabled", err.Error()+"; its API keys work again once it is enabled (POST /v1/users/{id}/enable), its sessions need a new login")
}

// visible returns a 404 problem unless the caller may see rec (auth.CheckJob: the
// owner, or an admin of the job's tenant); field names the job id in the request.
func (s *Service) visible(ctx context.Context, rec *schemas.JobRecord, field string) error {
	if s.sec == nil {
		return nil
	}
	if auth.CheckJob(s.principal(ctx), rec) != nil {
		return jobNotFound(rec.ID, field)
	}
	return nil
}

// releaseActive frees a cancelled job's slot at once.
func (s *Service) releaseActive(ctx context.Context, rec *schemas.JobRecord) {
	if s.sec == nil {
		return
	}
	s.releaseSlot(ctx, rec.Tenant, rec.User, rec.ID)
}

// releaseSlot gives a job's active-job slot back, even when ctx is cancelled.
func (s *Service) releaseSlot(ctx context.Context, tenant, user, jobID string) {
	if _, err := s.sec.Active.Release(context.WithoutCancel(ctx), tenant, user, jobID); err != nil {
		s.log.WithError(err).WithField("job_id", jobID).Warn("active-job slot not released; it is reclaimed when the user next hits the limit")
	}
}
