package ingest

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/creativeai-studio/studio/internal/auth"
)

// Access control is declared, not coded into handlers. Every route the HTTP handler
// serves, each huma operation (route, register) and each route registered on the mux
// directly (routeTable.handle), names what it asks of its caller, an Access, where it
// is registered; a route without one panics at registration. One function, authorize,
// enforces the declaration before the handler runs and before the body is read. The
// declarations form the table Service.Routes returns (tests enumerate it) and the
// OpenAPI document shows (each operation's security, x-access and x-required-scope).
//
// What stays in handlers is what depends on the resource, not the route: a job is
// visible to its owner and the tenant's admins (visible), a key to its owner and the
// tenant's admins, a login names a user of the caller's own tenant.

// AccessKind is how a route authenticates its caller.
type AccessKind string

// The kinds of access a route declares.
const (
	// AccessPublic: no credential; one that is sent is not even checked (health, docs,
	// the OpenAPI document, the web pages).
	AccessPublic AccessKind = "public"
	// AccessSignedURL: the URL's signature is the credential (presigned uploads); the
	// handler checks it.
	AccessSignedURL AccessKind = "signed-url"
	// AccessBodyCredential: the credential is in the body (a refresh token); the
	// handler checks it.
	AccessBodyCredential AccessKind = "body-credential"
	// AccessAuthenticated: any valid credential, whatever its scopes.
	AccessAuthenticated AccessKind = "authenticated"
	// AccessScope: a credential holding Access.Scope (admin holds every scope).
	AccessScope AccessKind = "scope"
)

// Access is what a route asks of its caller.
type Access struct {
	Kind AccessKind
	// Scope is the scope an AccessScope route needs.
	Scope auth.Scope
	// SelfParam (AccessScope only) names a path parameter holding a user id: a caller
	// without Scope still passes when it is that user on an interactive session (an
	// access token from a login; never an API key). Erasing an account.
	SelfParam string
	// DevLogin (AccessScope only): with Security.DevLogin (`studio up --auth-dev`) the
	// route needs no credential at all. Login.
	DevLogin bool
	// Operator (AccessScope only): the caller must also belong to the operator tenant
	// (Security.OperatorTenant). Routes whose data or effect spans every tenant (the
	// analytics store, global rollouts) are for the people who run the service, not for
	// a tenant's admins.
	Operator bool
	// Audit is the action a refusal is audited as; empty: actionAuthorize.
	Audit string
}

// actionAuthorize names a refusal of a route's declared access in audit events, unless
// the route names its own action (Access.Audit).
const actionAuthorize = "authorize"

// The declarations routes use.
var (
	public         = Access{Kind: AccessPublic}
	signedURL      = Access{Kind: AccessSignedURL}
	bodyCredential = Access{Kind: AccessBodyCredential}
	authenticated  = Access{Kind: AccessAuthenticated}
)

// scoped is the declaration of a route that needs sc.
func scoped(sc auth.Scope) Access { return Access{Kind: AccessScope, Scope: sc} }

// operator is the declaration of a route that spans every tenant: admin of the
// operator tenant (see Access.Operator).
func operator() Access { return Access{Kind: AccessScope, Scope: auth.ScopeAdmin, Operator: true} }

// orOwnSession lets the user named by path parameter param through on their own
// interactive session (see Access.SelfParam).
func (a Access) orOwnSession(param string) Access { a.SelfParam = param; return a }

// openWithDevLogin lets anyone through while Security.DevLogin is on.
func (a Access) openWithDevLogin() Access { a.DevLogin = true; return a }

// audited makes a refusal an audit event of action.
func (a Access) audited(action string) Access { a.Audit = action; return a }

// String describes a for people: the README's route table and the operation docs.
func (a Access) String() string {
	switch a.Kind {
	case AccessPublic:
		return "public"
	case AccessSignedURL:
		return "signed URL"
	case AccessBodyCredential:
		return "credential in the body"
	case AccessAuthenticated:
		return "any credential"
	}
	s := "`" + string(a.Scope) + "`"
	if a.Operator {
		s += " of the operator tenant"
	}
	if a.SelfParam != "" {
		s += ", or the user's own session ({" + a.SelfParam + "} = the caller; not an API key)"
	}
	if a.DevLogin {
		s += " (none with --auth-dev)"
	}
	return s
}

// checksCredential reports whether the route looks at an Authorization header at all;
// public routes, signed URLs and body credentials ignore it.
func (a Access) checksCredential() bool {
	return a.Kind == AccessAuthenticated || a.Kind == AccessScope
}

// accessKey is where an operation's declaration lives in huma.Operation.Metadata.
const accessKey = "studio.access"

// declare is the Metadata of an operation with access a:
// huma.Operation{..., Metadata: declare(scoped(auth.ScopeJobsRead))}.
func declare(a Access) map[string]any { return map[string]any{accessKey: a} }

// accessOf returns the access op declares.
func accessOf(op *huma.Operation) (Access, bool) {
	a, ok := op.Metadata[accessKey].(Access)
	if !ok || !a.valid() {
		return Access{}, false
	}
	return a, true
}

// valid reports whether a is a complete declaration.
func (a Access) valid() bool {
	switch a.Kind {
	case AccessPublic, AccessSignedURL, AccessBodyCredential, AccessAuthenticated:
		return a.Scope == "" && a.SelfParam == "" && !a.DevLogin && !a.Operator
	case AccessScope:
		_, err := auth.ParseScope(string(a.Scope))
		return err == nil
	}
	return false
}

// mustDeclare panics unless op declares its access.
func mustDeclare(op *huma.Operation) Access {
	a, ok := accessOf(op)
	if !ok {
		panic(fmt.Sprintf("ingest: %s %s (operation %q) declares no access: set Metadata: declare(scoped(auth.Scope...)) "+
			"or declare(public / authenticated / signedURL / bodyCredential) in its huma.Operation", op.Method, op.Path, op.OperationID))
	}
	return a
}

// documentAccess puts op's declaration into the OpenAPI document: the security
// requirement (the bearer scheme, with the scope as its list), x-access, x-required-scope,
// a line of the description, and the 401 and 403 answers the check gives.
func documentAccess(op *huma.Operation, a Access) {
	if a.checksCredential() {
		op.Errors = withStatus(op.Errors, http.StatusUnauthorized)
	}
	if a.Kind == AccessScope {
		op.Errors = withStatus(op.Errors, http.StatusForbidden)
	}
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions["x-access"] = string(a.Kind)
	switch a.Kind {
	case AccessScope:
		op.Security = []map[string][]string{{"bearer": {string(a.Scope)}}}
		op.Extensions["x-required-scope"] = string(a.Scope)
		if a.SelfParam != "" {
			op.Extensions["x-or-own-session"] = a.SelfParam
		}
		if a.Operator {
			op.Extensions["x-operator-only"] = true
		}
		if a.DevLogin {
			op.Security = append(op.Security, map[string][]string{}) // --auth-dev: none
		}
	case AccessAuthenticated:
		op.Security = []map[string][]string{{"bearer": {}}}
	default:
		op.Security = []map[string][]string{{}} // no credential
	}
	if op.Description != "" {
		op.Description += "\n\n"
	}
	op.Description += "**Access:** " + a.String() + "."
}

// withStatus returns codes with code in it, sorted; codes itself is not changed (routes
// share their lists).
func withStatus(codes []int, code int) []int {
	if slices.Contains(codes, code) {
		return codes
	}
	out := append(slices.Clone(codes), code)
	slices.Sort(out)
	return out
}

// Route is one route of the HTTP handler with its declared access.
type Route struct {
	// Method and Path make its ServeMux pattern: "GET", "/v1/jobs/{id}".
	Method, Path string
	// Operation is the huma operation id; empty for routes registered on the mux.
	Operation string
	Access    Access
	// Documented says the route is an operation of the OpenAPI document (the /latest
	// aliases, huma's document routes and the mux routes are not).
	Documented bool
}

// Routes returns every route the last Handler serves, with its declared access,
// sorted by path and method; nil before Handler has run. Call it once Handler has
// returned (the table is not written after that).
func (s *Service) Routes() []Route {
	if s.routes == nil {
		return nil
	}
	out := append([]Route(nil), s.routes.routes...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// routeTable records every route of one Handler with its declaration. Everything
// registered on its mux goes through handle (mux routes) or the huma adapter
// (operations and huma's own document routes), so the table is complete.
type routeTable struct {
	s      *Service
	mux    *http.ServeMux
	access map[string]Access // by ServeMux pattern
	routes []Route
	// expected are the routes huma registers on its own (the OpenAPI document and
	// schemas), declared before huma registers them.
	expected map[string]Access
}

func newRouteTable(s *Service, mux *http.ServeMux) *routeTable {
	return &routeTable{s: s, mux: mux, access: map[string]Access{}, expected: map[string]Access{}}
}

func (t *routeTable) add(method, path, operation string, a Access, documented bool) {
	pattern := method + " " + path
	if !a.valid() {
		panic(fmt.Sprintf("ingest: route %s declares no valid access (%+v): declare public, authenticated, signedURL, bodyCredential or scoped(auth.Scope...)", pattern, a))
	}
	if _, dup := t.access[pattern]; dup {
		panic("ingest: route " + pattern + " registered twice")
	}
	t.access[pattern] = a
	t.routes = append(t.routes, Route{Method: method, Path: path, Operation: operation, Access: a, Documented: documented})
}

// handle registers h on the mux at pattern ("GET /docs") with access a, enforced by
// authorize before h runs.
func (t *routeTable) handle(pattern string, a Access, h http.Handler) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		panic("ingest: mux route " + pattern + " has no method")
	}
	t.add(method, path, "", a, false)
	t.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.s.refuse(w, r, a, r.PathValue) {
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// lookup returns the access declared for the route r goes to. A request that matches
// no route (404, 405) needs a credential, as every route did before it was declared:
// closed unless declared open.
func (t *routeTable) lookup(r *http.Request) Access {
	if t != nil {
		if _, pattern := t.mux.Handler(r); pattern != "" {
			if a, ok := t.access[pattern]; ok {
				return a
			}
		}
	}
	return authenticated
}

// accessAdapter is the huma adapter of Handler: every operation huma serves passes
// through Handle, which records it in the table and puts authorize in front of it,
// before huma's own middlewares, parameter parsing and body reading. An operation
// without a declaration panics here even when it was registered without route.
type accessAdapter struct {
	huma.Adapter
	t *routeTable
}

func (a *accessAdapter) Handle(op *huma.Operation, handler func(huma.Context)) {
	method := strings.ToUpper(op.Method)
	acc, ok := accessOf(op)
	if !ok {
		if acc, ok = a.t.expected[method+" "+op.Path]; !ok {
			mustDeclare(op)
		}
	}
	a.t.add(method, op.Path, op.OperationID, acc, op.OperationID != "" && !op.Hidden)
	a.Adapter.Handle(op, func(ctx huma.Context) {
		r, w := humago.Unwrap(ctx)
		if a.t.s.refuse(w, r, acc, ctx.Param) {
			return
		}
		handler(ctx)
	})
}

// refuse answers the problem authorize returns, if any, and reports whether it did.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, a Access, param func(string) string) bool {
	prob, h := s.authorize(r, a, param)
	if prob == nil {
		return false
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	writeProblem(w, r, prob)
	return true
}

// authorize is the one check of a route's declared access, run before its handler and
// before its body is read: 401 (with WWW-Authenticate) when the route needs a
// credential and the request has none, 403 naming the missing scope when the
// credential falls short. nil lets the request through. A refusal is audited as
// a.Audit (actionAuthorize). Without security every caller is the default admin.
func (s *Service) authorize(r *http.Request, a Access, param func(string) string) (*Problem, http.Header) {
	if s.sec == nil || !a.checksCredential() || (a.DevLogin && s.sec.DevLogin) {
		return nil, nil
	}
	p, ok := auth.FromContext(r.Context())
	if !ok {
		// authenticate, before the mux, answers this already; this keeps the route
		// closed if it ever runs without it, through the Authenticator, which counts
		// and samples unauthenticated requests rather than storing each.
		_, err := s.sec.Authenticator.Authenticate(r.Context(), "", s.auditRequest(r))
		if err == nil {
			err = auth.ErrNoCredentials
		}
		return s.credentialRefusal(err, RequestIDFrom(r.Context()))
	}
	if a.Operator && p.Has(a.Scope) && p.Tenant != s.operatorTenant() {
		prob := problem(http.StatusForbidden, "operator_only", fmt.Sprintf(
			"this route spans every tenant, so it is for the service's operators: an admin of the operator tenant %q (--operator-tenant), not of tenant %q", s.operatorTenant(), p.Tenant),
			FieldProblem{Field: "Authorization", Constraint: "operator", Message: "the credential is not of the operator tenant"})
		s.auditRefusal(r, p, a, prob.Code)
		return prob, nil
	}
	if a.Kind == AccessAuthenticated || p.Has(a.Scope) {
		return nil, nil
	}
	if a.SelfParam != "" && p.KeyID == "" && p.User != "" && param(a.SelfParam) == p.User {
		return nil, nil
	}
	detail := fmt.Sprintf("this needs the %s scope", a.Scope)
	if a.SelfParam != "" {
		detail += ", or your own session (an access token from a login, not an API key) acting on yourself"
	}
	prob := problem(http.StatusForbidden, "forbidden", detail+"; use a credential that holds it",
		FieldProblem{Field: "Authorization", Constraint: "scope", Message: "the credential lacks the " + string(a.Scope) + " scope"})
	s.auditRefusal(r, p, a, prob.Code)
	return prob, nil
}

// auditRefusal records a refusal of a route's declared access.
func (s *Service) auditRefusal(r *http.Request, p auth.Principal, a Access, code string) {
	if s.sec.Audit == nil {
		return
	}
	action := a.Audit
	if action == "" {
		action = actionAuthorize
	}
	// The route's pattern, not its path: a path can name a user who is later erased.
	resource := r.Pattern
	if resource == "" {
		resource = r.Method + " " + r.URL.Path
	}
	e := auth.Event(p, action, resource, auth.ResultDenied, s.auditRequest(r))
	e.Reason = code
	if err := s.sec.Audit.Audit(r.Context(), e); err != nil {
		s.log.WithError(err).WithField("action", action).Error("audit event lost")
	}
}

// operatorTenant is the tenant whose admins operate the service (Security.OperatorTenant,
// default Config.DefaultTenant).
func (s *Service) operatorTenant() string {
	if s.sec != nil && s.sec.OperatorTenant != "" {
		return s.sec.OperatorTenant
	}
	return s.cfg.DefaultTenant
}
