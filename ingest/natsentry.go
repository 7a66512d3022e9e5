package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// ServeNATS answers job requests that upstream systems send on studio.submit.<task>
// (schemas.JobRequest, validated against schemas/jsonschema/job-request.json) until
// ctx is cancelled. Requests go through Admit, as POST /v1/jobs does: with security on
// each carries a credential in an Authorization: Bearer header (an API key or access
// token, checked by the same Authenticator as HTTP) and is submitted as that
// credential's user; tenant and user in the body must be left out or match it, and
// the tier is the user's. A request-reply gets a schemas.SubmitReply, or a
// schemas.Problem with the NATS micro error headers (Nats-Service-Error-Code is the
// HTTP-style status; a limit adds Retry-After). Every ingest process joins the queue
// group "ingest", so each request is handled once; a handler panic answers 500.
func (s *Service) ServeNATS(ctx context.Context, rs streams.RequestServer) error {
	return rs.Serve(ctx, streams.ServiceConfig{
		Name: "studio-ingest", Version: "1.0.0", Description: "CreativeAI Studio job submission",
		Endpoint: "submit", Subject: schemas.SubmitSubjectPattern, QueueGroup: "ingest", Log: s.log,
	}, s.handleNATSSubmit)
}

// handleNATSSubmit is the NATS entry's adapter to Admit: authenticate the message's
// credential, admit (which parses the body once the caller may submit), and render
// the outcome as a reply.
func (s *Service) handleNATSSubmit(ctx context.Context, m streams.Request) streams.Reply {
	task := schemas.Task(strings.TrimPrefix(m.Subject, "studio.submit."))
	requestID := first(m.Header, "Studio-Request-Id", "X-Request-ID")
	if !acceptRequestID(requestID) {
		requestID = newRequestID()
	}
	log := s.log.WithFields(logrus.Fields{"stage": "ingest", "subject": m.Subject, "request_id": requestID})
	var who *auth.Principal
	if s.sec != nil {
		p, err := s.sec.Authenticator.Authenticate(ctx, first(m.Header, "Authorization"), auth.Request{RequestID: requestID, TraceID: traceIDFor(requestID)})
		if err != nil {
			prob, h := s.credentialRefusal(err, requestID)
			return s.natsProblem(log, m, prob, h, requestID)
		}
		who = &p
	}
	sub, err := s.Admit(ctx, who, Entry{
		RequestID: requestID, TraceParent: first(m.Header, "traceparent"),
		IdempotencyKey: first(m.Header, "Idempotency-Key"),
	}, func() (SubmitRequest, error) {
		jr, p := decodeJobRequest(m.Data, task)
		if p != nil {
			return SubmitRequest{}, p
		}
		req := submitRequestOf(jr)
		req.Task = task
		return req, nil
	})
	if err != nil {
		prob, retry := s.refusal(err, m.Subject)
		var h http.Header
		if retry != "" {
			h = http.Header{"Retry-After": {retry}}
		}
		return s.natsProblem(log, m, prob, h, requestID)
	}
	rec := sub.Job
	l := linksFor("v1", rec.ID, "")
	reply := schemas.SubmitReply{
		Schema: schemas.SchemaJobSubmitted, JobID: rec.ID, Status: rec.Status, QueuePosition: rec.QueuePosition,
		StatusURL: jobPath("v2", rec.ID), EventsURL: l.events, WebSocketURL: l.events,
		ResultSubject: schemas.ResultSubject(rec.Tenant, rec.Task), Replayed: sub.Replayed, TraceID: rec.TraceID,
	}
	if base := s.wsBase(nil); base != "" {
		reply.WebSocketURL = base + l.events
	}
	data, _ := json.Marshal(reply)
	return streams.Reply{Data: data, Header: map[string][]string{"Content-Type": {"application/json"}, "Studio-Request-Id": {requestID}}}
}

// natsProblem answers with p and the extra headers h (WWW-Authenticate, Retry-After).
func (s *Service) natsProblem(log logrus.FieldLogger, m streams.Request, p *Problem, h http.Header, requestID string) streams.Reply {
	p.Instance, p.RequestID = m.Subject, requestID
	log.WithFields(logrus.Fields{"status_code": p.Status, "code": p.Code}).Info("job request refused")
	data, _ := json.Marshal(p)
	hdr := map[string][]string{"Content-Type": {"application/problem+json"}, "Studio-Request-Id": {requestID}}
	for k, v := range h {
		hdr[k] = v
	}
	return streams.Reply{Data: data, ErrCode: strconv.Itoa(p.Status), ErrDesc: p.Code + ": " + p.Detail, Header: hdr}
}

// first returns the first non-empty header value among names. NATS header names are
// case-sensitive on the wire; publishers spell them variously, so matching is not.
func first(h map[string][]string, names ...string) string {
	for _, n := range names {
		for k, v := range h {
			if strings.EqualFold(k, n) && len(v) > 0 && v[0] != "" {
				return v[0]
			}
		}
	}
	return ""
}
