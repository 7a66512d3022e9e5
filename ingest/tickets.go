package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
)

// TicketRequest is the body of POST /v1/tickets.
type TicketRequest struct {
	Jobs []string `json:"jobs" minItems:"1" maxItems:"16" doc:"ids of the jobs whose event streams the ticket opens; each must be yours (or your tenant's, for an admin)"`
}

// registerTicketRoutes adds POST /v1/tickets (and /v2, /latest): single-use,
// short-lived credentials for event streams, which browsers open without headers.
func (s *Service) registerTicketRoutes(api huma.API) {
	op := func() huma.Operation {
		return huma.Operation{OperationID: "create-ticket", Method: http.MethodPost, Path: "/tickets", Tags: []string{"jobs"},
			Summary: "Mint a ticket for a job's event stream",
			Description: fmt.Sprintf("Browsers cannot set Authorization on a WebSocket or EventSource, and URLs end up in access logs, so "+
				"GET /v1/jobs/{id}/events takes `?ticket=` instead of a credential: a ticket names the jobs it may follow, works once "+
				"(the first connection uses it up, on any replica) and expires %d seconds after it is minted. "+
				"Long-lived credentials in the query string (`?access_token=`) are refused.", int(auth.TicketTTL.Seconds())),
			DefaultStatus: http.StatusCreated, Errors: []int{401, 403, 404, 422, 503}, Metadata: declare(scoped(auth.ScopeJobsRead)),
		}
	}
	h := func(ctx context.Context, in *struct{ Body TicketRequest }) (*bodyOutput[auth.Ticket], error) {
		for i, id := range in.Body.Jobs {
			if _, err := s.lookupField(ctx, id, fmt.Sprintf("jobs[%d]", i)); err != nil {
				return nil, err
			}
		}
		tk, err := s.sec.Issuer.IssueTicket(s.principal(ctx), in.Body.Jobs)
		if err != nil {
			return nil, problem(422, "invalid_ticket_request", err.Error())
		}
		s.audit(ctx, auth.ActionTicketIssue, "jobs/"+strings.Join(in.Body.Jobs, ","), auth.ResultAllowed)
		return &bodyOutput[auth.Ticket]{Status: http.StatusCreated, Body: tk}, nil
	}
	route(s, api, versioned{version: "v1", latest: true}, op(), h)
	route(s, api, versioned{version: "v2"}, op(), h)
}

// eventsJob returns the job id of an event-stream path (/v1/jobs/{id}/events or
// /latest/jobs/{id}/events), or "".
func eventsJob(path string) string {
	for _, v := range []string{"/v1/jobs/", "/latest/jobs/"} {
		if rest, ok := strings.CutPrefix(path, v); ok {
			if id, ok := strings.CutSuffix(rest, "/events"); ok && id != "" && !strings.Contains(id, "/") {
				return id
			}
		}
	}
	return ""
}

// queryCredential authenticates an event-stream request without an Authorization
// header: ?ticket= is redeemed for the job in the path (used up, audited); a
// long-lived credential in the query string is refused. It returns the request to
// serve, the request unchanged when the query carries no credential, or nil after
// answering 401 itself.
func (s *Service) queryCredential(w http.ResponseWriter, r *http.Request) *http.Request {
	job := eventsJob(r.URL.Path)
	if job == "" || r.Method != http.MethodGet {
		return r
	}
	q := r.URL.Query()
	if q.Has("access_token") {
		s.auditDecision(r, auth.Principal{}, auth.ActionAuthenticate, "", auth.ResultDenied)
		w.Header().Set("WWW-Authenticate", `Bearer realm="studio", error="invalid_request"`)
		writeProblem(w, r, problem(http.StatusUnauthorized, "credential_in_url",
			"a token or API key in the URL is refused (URLs are logged); mint a single-use ticket with POST /v1/tickets and pass ?ticket=, or send Authorization: Bearer"))
		return nil
	}
	ticket := q.Get("ticket")
	if ticket == "" {
		return r
	}
	p, err := s.sec.Issuer.RedeemTicket(r.Context(), ticket, job)
	if err == nil && p.KeyID != "" && s.sec.Keys != nil {
		// A ticket minted with an API key works no longer than the key.
		_, err = s.sec.Keys.Lineage(r.Context(), p.KeyID)
	}
	if err != nil {
		s.auditDecision(r, auth.Principal{}, auth.ActionTicketRedeem, "job/"+job, auth.ResultDenied)
		if !errors.Is(err, auth.ErrInvalidToken) {
			prob, h := s.credentialRefusal(err, RequestIDFrom(r.Context()))
			for k, v := range h {
				w.Header()[k] = v
			}
			writeProblem(w, r, prob)
			return nil
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="studio", error="invalid_token"`)
		writeProblem(w, r, problem(http.StatusUnauthorized, "invalid_ticket", err.Error()+"; mint a new ticket with POST /v1/tickets"))
		return nil
	}
	s.auditDecision(r, p, auth.ActionTicketRedeem, "job/"+job, auth.ResultAllowed)
	return r.WithContext(auth.NewContext(r.Context(), p))
}

// auditDecision records an authentication decision made outside the Authenticator; a
// failure is logged.
func (s *Service) auditDecision(r *http.Request, p auth.Principal, action, resource, result string) {
	if s.sec.Audit == nil {
		return
	}
	if err := s.sec.Audit.Audit(r.Context(), auth.Event(p, action, resource, result, s.auditRequest(r))); err != nil {
		s.log.WithError(err).WithField("action", action).Error("audit event lost")
	}
}
