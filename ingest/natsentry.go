package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// the caller is the connection's identity when the request crossed a service import
// from an account in Security.NATSAccounts (natsCaller), else the credential in an
// Authorization: Bearer header (an API key or access token, checked by the same
// Authenticator as HTTP); tenant and user in the body must be left out or match the
// caller, and the tier is the user's. A request-reply gets a schemas.SubmitReply, or a
// schemas.Problem with the NATS micro error headers (Nats-Service-Error-Code is the
// HTTP-style status; a limit adds Retry-After). Every ingest process joins the queue
// group "ingest", so each request is handled once; a handler panic answers 500.
func (s *Service) ServeNATS(ctx context.Context, rs streams.RequestServer) error {
	return rs.Serve(ctx, streams.ServiceConfig{
		Name: "studio-ingest", Version: "1.0.0", Description: "CreativeAI Studio job submission",
		Endpoint: "submit", Subject: schemas.SubmitSubjectPattern, QueueGroup: "ingest", Log: s.log,
	}, s.handleNATSSubmit)
}

// natsIdentify is where both NATS entries (jobs and batches) start: the request id
// (the caller's when acceptable), a logger carrying it, and the caller found from the
// connection or the Authorization header (nil while security is off). refusal is the
// reply to send when the caller is not accepted.
func (s *Service) natsIdentify(ctx context.Context, m streams.Request) (requestID string, log logrus.FieldLogger, who *auth.Principal, refusal *streams.Reply) {
	requestID = first(m.Header, "Studio-Request-Id", "X-Request-ID")
	if !acceptRequestID(requestID) {
		requestID = newRequestID()
	}
	log = s.log.WithFields(logrus.Fields{"stage": "ingest", "subject": m.Subject, "request_id": requestID})
	if s.sec == nil {
		return requestID, log, nil, nil
	}
	p, err := s.natsCaller(ctx, m.Header, auth.Request{RequestID: requestID, TraceID: traceIDFor(requestID)})
	if err != nil {
		var prob *Problem
		var h http.Header
		if !errors.As(err, &prob) {
			prob, h = s.credentialRefusal(err, requestID)
		}
		r := s.natsProblem(log, m, prob, h, requestID)
		return requestID, log, nil, &r
	}
	return requestID, log, &p, nil
}

// handleNATSSubmit is the NATS entry's adapter to Admit: authenticate the message's
// credential, admit (which parses the body once the caller may submit), and render
// the outcome as a reply.
func (s *Service) handleNATSSubmit(ctx context.Context, m streams.Request) streams.Reply {
	task := schemas.Task(strings.TrimPrefix(m.Subject, "studio.submit."))
	requestID, log, who, refusal := s.natsIdentify(ctx, m)
	if refusal != nil {
		return *refusal
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

// HeaderRequestInfo is the header nats-server adds to a request that crossed a service
// import marked share: true: JSON naming the sender's account ("acc") and user
// ("user"). The server replaces any such header the sender wrote, so across an import
// it is the connection's authenticated identity.
const HeaderRequestInfo = "Nats-Request-Info"

// NATSSender is the sender of a NATS request as the server stamped it
// (HeaderRequestInfo).
type NATSSender struct {
	Account string `json:"acc"`
	User    string `json:"user"`
}

// ErrForgedSender: a request carries a spelling of HeaderRequestInfo that the server
// did not write (another letter case, or more than one value). nats-server replaces
// only the header of that exact name on a shared import, so any other spelling came
// from the sender; such a request is refused, never read either way.
var ErrForgedSender = errors.New("ingest: the request carries a sender header the NATS server did not write")

// ParseNATSSender reads HeaderRequestInfo from h; ok is false when the header is
// absent or names no account. A header whose name differs from HeaderRequestInfo only
// in letter case, or one with several values, is ErrForgedSender: the server stamps
// one value under the exact name, so anything else was written by the sender.
func ParseNATSSender(h map[string][]string) (_ NATSSender, ok bool, _ error) {
	var raw []string
	for k, v := range h {
		if !strings.EqualFold(k, HeaderRequestInfo) {
			continue
		}
		if k != HeaderRequestInfo {
			return NATSSender{}, false, fmt.Errorf("%w: header %q", ErrForgedSender, k)
		}
		raw = v
	}
	if len(raw) > 1 {
		return NATSSender{}, false, fmt.Errorf("%w: %d values of %s", ErrForgedSender, len(raw), HeaderRequestInfo)
	}
	if len(raw) == 0 || raw[0] == "" {
		return NATSSender{}, false, nil
	}
	var ns NATSSender
	if err := json.Unmarshal([]byte(raw[0]), &ns); err != nil || ns.Account == "" {
		return NATSSender{}, false, nil
	}
	return ns, true, nil
}

// ParseNATSAccounts parses --nats-accounts: "ACCOUNT=tenant" pairs separated by
// commas, each account a NATS account whose users submit as users of that tenant.
func ParseNATSAccounts(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		acc, tenant, ok := strings.Cut(pair, "=")
		acc, tenant = strings.TrimSpace(acc), strings.TrimSpace(tenant)
		if !ok || acc == "" {
			return nil, fmt.Errorf("--nats-accounts: %q is not ACCOUNT=tenant", pair)
		}
		if err := schemas.ValidToken(tenant); err != nil {
			return nil, fmt.Errorf("--nats-accounts: tenant of account %s: %w", acc, err)
		}
		if _, dup := out[acc]; dup {
			return nil, fmt.Errorf("--nats-accounts: account %s is mapped twice", acc)
		}
		out[acc] = tenant
	}
	return out, nil
}

// natsCaller is who submits a NATS request. A request the server stamped with the
// sender's account (HeaderRequestInfo) from an account in Security.NATSAccounts is the
// studio user of the same name in the mapped tenant, with that user's scopes and tier:
// the identity is the connection's, and nothing in the message (tenant, user, an
// Authorization header) changes it. Any other request (from the service's own account,
// or from an account that names nobody, such as SUBMITTERS) must carry a credential in
// Authorization: Bearer, checked as on HTTP. Each decision is audited.
func (s *Service) natsCaller(ctx context.Context, h map[string][]string, req auth.Request) (auth.Principal, error) {
	sender, stamped, err := ParseNATSSender(h)
	if err != nil {
		if s.sec.Audit != nil {
			if aerr := s.sec.Audit.Audit(ctx, auth.Event(auth.Principal{}, auth.ActionAuthenticate, "nats", auth.ResultDenied, req)); aerr != nil {
				return auth.Principal{}, fmt.Errorf("auth: audit unavailable, request refused: %w", aerr)
			}
		}
		return auth.Principal{}, problem(http.StatusForbidden, "nats_sender_forged", err.Error()+"; send no header of that name: the server writes it")
	}
	tenant, mapped := s.sec.NATSAccounts[sender.Account]
	if !stamped || !mapped {
		return s.sec.Authenticator.Authenticate(ctx, first(h, "Authorization"), req)
	}
	resource := "nats/" + sender.Account + "/" + sender.User
	audit := func(p auth.Principal, result string) error {
		if s.sec.Audit == nil {
			return nil
		}
		if err := s.sec.Audit.Audit(ctx, auth.Event(p, auth.ActionAuthenticate, resource, result, req)); err != nil {
			return fmt.Errorf("auth: audit unavailable, request refused: %w", err)
		}
		return nil
	}
	if schemas.ValidToken(sender.User) != nil {
		if err := audit(auth.Principal{Tenant: tenant}, auth.ResultDenied); err != nil {
			return auth.Principal{}, err
		}
		return auth.Principal{}, problem(http.StatusForbidden, "nats_user_invalid",
			fmt.Sprintf("NATS user %q of account %s is not a valid studio user id (letters, digits, '-', '_'); rename it", sender.User, sender.Account))
	}
	u, err := s.sec.Users.Get(ctx, tenant, sender.User)
	switch {
	case errors.Is(err, auth.ErrUserNotFound):
		if err := audit(auth.Principal{Tenant: tenant, User: sender.User}, auth.ResultDenied); err != nil {
			return auth.Principal{}, err
		}
		return auth.Principal{}, problem(http.StatusForbidden, "user_not_found",
			fmt.Sprintf("NATS user %q of account %s submits as studio user %q of tenant %q, which does not exist; an admin creates it with `studio users create`", sender.User, sender.Account, sender.User, tenant))
	case err != nil:
		return auth.Principal{}, err
	case u.Disabled:
		if err := audit(auth.Principal{Tenant: tenant, User: sender.User}, auth.ResultDenied); err != nil {
			return auth.Principal{}, err
		}
		return auth.Principal{}, userDisabled(u.CheckEnabled())
	}
	p := u.Principal()
	if err := audit(p, auth.ResultAllowed); err != nil {
		return auth.Principal{}, err
	}
	return p, nil
}

// ServeNATSBatches answers batches that upstream systems send on
// studio.submit.batch.<task> (schemas.BatchRequest: uploaded images by key, one task
// and parameter set) until ctx is cancelled. The caller is found as on
// studio.submit.<task> (natsCaller or the Authorization header), and the batch goes
// through admitBatch, the admission of POST /v2/batches: each image through Admit,
// the rate limit charged once, the active-job cap per job, partial admission. The reply
// is a schemas.BatchReply, or a schemas.Problem when nothing was admitted. Every ingest
// process joins the queue group "ingest".
func (s *Service) ServeNATSBatches(ctx context.Context, rs streams.RequestServer) error {
	return rs.Serve(ctx, streams.ServiceConfig{
		Name: "studio-ingest-batches", Version: "1.0.0", Description: "CreativeAI Studio batch submission",
		Endpoint: "submit-batch", Subject: schemas.SubmitBatchSubjectPattern, QueueGroup: "ingest", Log: s.log,
	}, s.handleNATSBatch)
}

// handleNATSBatch is the NATS entry's adapter to admitBatch.
func (s *Service) handleNATSBatch(ctx context.Context, m streams.Request) streams.Reply {
	task := schemas.Task(strings.TrimPrefix(m.Subject, "studio.submit.batch."))
	requestID, log, who, refusal := s.natsIdentify(ctx, m)
	if refusal != nil {
		return *refusal
	}
	entry := Entry{RequestID: requestID, TraceParent: first(m.Header, "traceparent"), Batch: NewJobID()}
	admitted, refused, err := s.admitBatch(ctx, who, entry, m.Subject, func() ([]batchItem, *Problem) {
		if len(m.Data) > maxBatchJSON {
			return nil, problem(413, "body_too_large", fmt.Sprintf("a batch request may be at most %d bytes: it names uploaded images by key", maxBatchJSON))
		}
		items, p := parseBatchJSON(m.Data)
		if p != nil {
			return nil, p
		}
		for i := range items {
			switch t := items[i].req.Task; {
			case t == "":
				items[i].req.Task = task
			case t != task:
				return nil, problem(422, "task_mismatch", fmt.Sprintf("the body asks for %q but was sent on the %s subject", t, schemas.SubmitBatchSubject(task)),
					FieldProblem{Field: "task", Constraint: "const", Message: "must match the subject's task " + string(task)})
			}
		}
		return items, nil
	})
	if err != nil {
		prob, retry := s.refusal(err, m.Subject)
		var h http.Header
		if retry != "" {
			h = http.Header{"Retry-After": {retry}}
		}
		return s.natsProblem(log, m, prob, h, requestID)
	}
	reply := schemas.BatchReply{Schema: schemas.SchemaBatchSubmitted, BatchID: entry.Batch, Jobs: []schemas.BatchJob{}, StatusURL: batchPath(entry.Batch)}
	skipped := map[int]bool{}
	for _, r := range refused {
		skipped[r.Index] = true
		reply.Refused = append(reply.Refused, schemas.BatchRefused{Index: r.Index, Key: r.Key, Problem: *r.Problem})
	}
	i := 0
	for _, rec := range admitted {
		for skipped[i] {
			i++
		}
		reply.Jobs = append(reply.Jobs, schemas.BatchJob{Index: i, JobID: rec.ID, Status: rec.Status})
		i++
	}
	log.WithFields(logrus.Fields{"batch": entry.Batch, "jobs": len(admitted), "refused": len(refused)}).Info("batch queued")
	data, _ := json.Marshal(reply)
	return streams.Reply{Data: data, Header: map[string][]string{"Content-Type": {"application/json"}, "Studio-Request-Id": {requestID}}}
}
