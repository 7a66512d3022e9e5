package ingest

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// ServeNATS answers job requests that upstream systems send on studio.submit.<task>
// (schemas.JobRequest, validated against schemas/jsonschema/job-request.json) until
// ctx is cancelled. The checks, limits and idempotency are those of POST /v1/jobs. A
// request-reply gets a schemas.SubmitReply, or a schemas.Problem with the NATS micro
// error headers (Nats-Service-Error-Code is the HTTP-style status). Every ingest
// process joins the queue group "ingest", so each request is handled once.
func (s *Service) ServeNATS(ctx context.Context, rs streams.RequestServer) error {
	return rs.Serve(ctx, streams.ServiceConfig{
		Name: "studio-ingest", Version: "1.0.0", Description: "CreativeAI Studio job submission",
		Endpoint: "submit", Subject: schemas.SubmitSubjectPattern, QueueGroup: "ingest",
	}, s.handleNATSSubmit)
}

func (s *Service) handleNATSSubmit(ctx context.Context, m streams.Request) streams.Reply {
	task := schemas.Task(strings.TrimPrefix(m.Subject, "studio.submit."))
	requestID := first(m.Header, "Studio-Request-Id", "X-Request-ID")
	if !acceptRequestID(requestID) {
		requestID = newRequestID()
	}
	log := s.log.WithFields(logrus.Fields{"stage": "ingest", "subject": m.Subject, "request_id": requestID})
	jr, p := decodeJobRequest(m.Data, task)
	if p != nil {
		return s.natsProblem(log, m, p, requestID)
	}
	req := submitRequestOf(jr)
	req.Task, req.RequestID = task, requestID
	if k := first(m.Header, "Idempotency-Key"); k != "" {
		if req.IdempotencyKey != "" && req.IdempotencyKey != k {
			return s.natsProblem(log, m, problem(422, "idempotency_key_mismatch", "the Idempotency-Key header and idempotency_key field differ",
				FieldProblem{Field: "idempotency_key", Constraint: "const", Message: "must equal the Idempotency-Key header"}), requestID)
		}
		req.IdempotencyKey = k
	}
	if req.TraceParent == "" {
		req.TraceParent = first(m.Header, "traceparent")
	}
	rec, replayed, err := s.submit(ctx, req)
	if err != nil {
		return s.natsProblem(log, m, s.asProblem(err, m.Subject), requestID)
	}
	l := linksFor("v1", rec.ID, "")
	reply := schemas.SubmitReply{
		Schema: schemas.SchemaJobSubmitted, JobID: rec.ID, Status: rec.Status, QueuePosition: rec.QueuePosition,
		StatusURL: jobPath("v2", rec.ID), EventsURL: l.events, WebSocketURL: l.events,
		ResultSubject: schemas.ResultSubject(rec.Tenant, rec.Task), Replayed: replayed, TraceID: rec.TraceID,
	}
	if base := s.wsBase(nil); base != "" {
		reply.WebSocketURL = base + l.events
	}
	data, _ := json.Marshal(reply)
	return streams.Reply{Data: data, Header: map[string][]string{"Content-Type": {"application/json"}, "Studio-Request-Id": {requestID}}}
}

func (s *Service) natsProblem(log logrus.FieldLogger, m streams.Request, p *Problem, requestID string) streams.Reply {
	p.Instance, p.RequestID = m.Subject, requestID
	log.WithFields(logrus.Fields{"status_code": p.Status, "code": p.Code}).Info("job request refused")
	data, _ := json.Marshal(p)
	return streams.Reply{
		Data: data, ErrCode: strconv.Itoa(p.Status), ErrDesc: p.Code + ": " + p.Detail,
		Header: map[string][]string{"Content-Type": {"application/problem+json"}, "Studio-Request-Id": {requestID}},
	}
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
