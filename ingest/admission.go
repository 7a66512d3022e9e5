package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// This file is the one admission path. Every way a job gets in (POST /vN/jobs, the NATS
// entry studio.submit.<task>, Service.Submit) parses its transport, says who the caller
// is, and calls Admit; nothing else creates a job, so a rule added here holds on every
// entry. It is a part of ingest rather than a package of its own because the rules
// interleave with ingest's own state (idempotency claims, the job index, the result
// cache) and speak its problem vocabulary; the transports around it stay thin.

// Entry is what a transport carried beside the job request. Every field is optional.
type Entry struct {
	// RequestID names the request in logs, problems, audit events and the job's trace.
	RequestID string
	// TraceParent is a W3C traceparent header; it wins over one in the request body.
	TraceParent string
	// IdempotencyKey is an Idempotency-Key header; a body naming another key is refused.
	IdempotencyKey string
	// IP is the caller's address when the transport knows one.
	IP string
	// Batch admits the job as a member of that batch (POST /v2/batches): it goes on the
	// batch lane, BatchTier's subjects, whatever the caller's tier.
	Batch string

	// rateCharged says the batch was already charged against the rate limit by its
	// first image, so rule 3 is not applied again. Only the batch entry sets it.
	rateCharged bool
}

// BatchTier is the tier whose subjects carry batch jobs: the lowest. The stage runners
// pick the highest tier with work ready, except that every FloorEvery-th pick starts
// from the lowest (streams.RunnerConfig.FloorEvery), so batch work yields to
// interactive work without starving.
var BatchTier = schemas.Tiers[len(schemas.Tiers)-1]

// Submission is a job Admit accepted: the job record, and whether an Idempotency-Key
// answered with an earlier job instead of creating one.
type Submission struct {
	Job      *schemas.JobRecord
	Replayed bool
}

// RequestReader reads the job request from its transport (parsing, size and schema
// checks). Admit calls it only once the caller may submit, so the body of a refused
// caller is never read. A refusal is a *Problem.
type RequestReader func() (SubmitRequest, error)

// Admit decides whether a job request gets in and, if it does, stores its input and
// queues it. who is the authenticated caller, nil when none was presented; read reads
// the request. It blocks on the KV buckets, the object store and the publish; safe for
// concurrent use.
//
// With security on (WithSecurity) the rules apply in this order and the first that
// fails refuses the request:
//
//  1. A caller is present (401 unauthenticated) and holds jobs:write (403 forbidden).
//  2. The caller's user exists: credentials of a deleted user submit nothing (403
//     user_not_found). Its tier is the user record's, whatever the credential or the
//     request say.
//  3. The tier's rate limit (429 rate_limited with a retry delay), before the request
//     body is read. A batch is charged once, by its first image.
//  4. The request is read (4xx naming the field). Tenant and user are the caller's: a
//     request naming others is refused (403 identity_mismatch).
//  5. The input: fields, model, parameters, callback URL, idempotency key, and the
//     uploaded object a key names (4xx naming the field). The object is read only once
//     its key is known to lie under the caller's tenant.
//  6. Idempotency: an earlier identical request with the same key is the answer
//     (Submission.Replayed, no new job, no slot taken); another request with that key
//     is 409 idempotency_conflict. It needs the image bytes, hence after step 5.
//  7. The image: format, bytes and pixels, read from its header (413, 415, 422).
//  8. The tenant's storage quota: what it stores (inputs, results, uploads) plus this
//     input (403 storage_quota_exceeded naming the quota and the usage; see
//     quota.Storage).
//  9. The tier's active-job cap (429 too_many_active_jobs). The slot is given back if
//     the job is not queued after all, and when it ends (quota.ActiveJobs.Run).
//
// Then the input is stored without its metadata, the job indexed, answered from the
// result cache or published. Each call leaves exactly one job-submit audit event:
// "allowed" naming the job, or "denied"/"error" with the problem code as the reason.
//
// Without security (development) only steps 4 to 7 apply: the job belongs to who when
// given (the HTTP entry's default caller; a request naming another tenant or user is
// refused), else to the tenant and user the request names (the NATS entry), else to
// Config.DefaultTenant and DefaultUser; the tier is the request's or DefaultTier.
//
// A refusal is a *Problem or a *quota.Exceeded (see refusal); any other error is an
// infrastructure failure the caller may retry.
func (s *Service) Admit(ctx context.Context, who *auth.Principal, in Entry, read RequestReader) (sub Submission, err error) {
	var req SubmitRequest
	if s.sec != nil {
		defer func() { s.auditSubmission(ctx, who, in, req.TraceParent, sub, err) }()
	}

	// 1-3: who submits, as what, and how often.
	tier, limits, err := s.admitCaller(ctx, who, !in.rateCharged)
	if err != nil {
		return Submission{}, err
	}

	// 4: the request, on whose behalf.
	if req, err = read(); err != nil {
		return Submission{}, err
	}
	if who != nil {
		if p := identityMismatch(who, &req); p != nil {
			return Submission{}, p
		}
		req.Tenant, req.User = who.Tenant, who.User
	}
	if s.sec != nil {
		req.Tier = tier
	}
	if in.Batch != "" {
		req.Batch, req.Tier = in.Batch, BatchTier
	}

	// 5: the input, before anything is read or written on its behalf.
	if p := applyEntry(&req, in); p != nil {
		return Submission{}, p
	}
	spec, p := s.validate(&req)
	if p != nil {
		return Submission{}, p
	}
	if p := checkImagePresence(&req); p != nil {
		return Submission{}, p
	}
	if req.Image == nil && req.ImageKey != "" {
		if req.Image, err = s.readUpload(ctx, &req); err != nil {
			return Submission{}, err
		}
	}
	if req.Style == nil && req.StyleKey != "" {
		if req.Style, err = s.readUploadKey(ctx, req.StyleKey, req.StyleField); err != nil {
			return Submission{}, err
		}
	}

	// 6: idempotency. An earlier job for the same key and request is the answer.
	jobID := NewJobID()
	var idemKey, fp string
	if req.IdempotencyKey != "" {
		digest := sha256.Sum256(req.Image)
		input := hex.EncodeToString(digest[:])
		if req.Style != nil {
			sdigest := sha256.Sum256(req.Style)
			input += "+" + hex.EncodeToString(sdigest[:])
		}
		idemKey, fp = idempotencyKey(req.Tenant, req.User, req.IdempotencyKey), fingerprint(&req, input)
		prev, prevID, err := s.checkIdempotency(ctx, idemKey, fp)
		if err != nil {
			return Submission{}, err
		}
		if prev != nil {
			return Submission{Job: prev, Replayed: true}, nil
		}
		if prevID != "" {
			jobID = prevID // claimed by an attempt that never queued the job
		}
	}

	// 7: the image, from its header: nothing is decoded here. A task without one
	// (generate) stores its parameters as the job's input document instead.
	var hdr, styleHdr imageio.Header
	if schemas.TakesImage(req.Task) {
		if hdr, err = imageio.Inspect(req.Image, s.cfg.Limits); err != nil {
			return Submission{}, imageProblem(err, req.ImageField)
		}
	} else if req.Image, err = promptDocument(&req); err != nil {
		return Submission{}, err
	}
	if req.Style != nil {
		// The style image meets the content image's bounds: same formats, bytes and
		// pixels.
		if styleHdr, err = imageio.Inspect(req.Style, s.cfg.Limits); err != nil {
			return Submission{}, imageProblem(err, req.StyleField)
		}
	}

	// 8: the tenant's storage quota, for the input about to be stored.
	if err := s.checkStorage(ctx, req.Tenant, int64(len(req.Image))); err != nil {
		return Submission{}, err
	}

	// 9: the active-job cap, now that the job has its id.
	if s.sec != nil {
		if err := s.sec.Active.Acquire(ctx, req.Tenant, req.User, jobID, limits.MaxActive); err != nil {
			return Submission{}, err
		}
		defer func() {
			// The slot stays with a queued job; a job that was not queued, or that a
			// concurrent identical request created, gives it back.
			if err != nil || sub.Job.ID != jobID {
				s.releaseSlot(ctx, req.Tenant, req.User, jobID)
			}
		}()
	}

	rec, replayed, err := s.enqueue(ctx, &req, spec, jobID, idemKey, fp, hdr, styleHdr)
	if err != nil {
		return Submission{}, err
	}
	if !replayed {
		s.reserveStorage(ctx, req.Tenant, int64(len(req.Image)))
	}
	return Submission{Job: rec, Replayed: replayed}, nil
}

// admitCaller applies rules 1 to 3 of Admit (rule 3 only when rate is set). It returns
// the caller's tier, from the user record, and its limits.
func (s *Service) admitCaller(ctx context.Context, who *auth.Principal, rate bool) (schemas.Tier, quota.Limits, error) {
	if s.sec == nil {
		return "", quota.Limits{}, nil
	}
	if who == nil {
		return "", quota.Limits{}, problem(http.StatusUnauthorized, "unauthenticated", "a job needs a credential: send Authorization: Bearer <access token or API key>")
	}
	if err := who.Require(auth.ScopeJobsWrite); err != nil {
		return "", quota.Limits{}, problem(http.StatusForbidden, "forbidden", err.Error()+"; use a credential that may submit jobs")
	}
	u, err := s.activeUser(ctx, who.Tenant, who.User)
	if err != nil {
		return "", quota.Limits{}, err
	}
	limits := s.sec.Policy.For(u.Tier)
	if !rate {
		return u.Tier, limits, nil
	}
	d, err := s.sec.Limiter.Allow(ctx, who.Tenant, who.User, limits.Window())
	if err != nil {
		return "", quota.Limits{}, fmt.Errorf("rate limit: %w", err)
	}
	if !d.Allowed {
		return "", quota.Limits{}, d.Err()
	}
	return u.Tier, limits, nil
}

// identityMismatch refuses a request that names a tenant or user other than the
// caller's: it would act on someone else's behalf.
func identityMismatch(who *auth.Principal, req *SubmitRequest) *Problem {
	var fields []FieldProblem
	if req.Tenant != "" && req.Tenant != who.Tenant {
		fields = append(fields, FieldProblem{Field: "tenant", Constraint: "const", Message: "must be your own tenant " + who.Tenant + " or left out"})
	}
	if req.User != "" && req.User != who.User {
		fields = append(fields, FieldProblem{Field: "user", Constraint: "const", Message: "must be your own user id or left out"})
	}
	if len(fields) == 0 {
		return nil
	}
	return problem(http.StatusForbidden, "identity_mismatch",
		"the request names a tenant or user other than the credential's; jobs are submitted as the credential's user, so leave tenant and user out", fields...)
}

// applyEntry merges what the transport carried into req.
func applyEntry(req *SubmitRequest, in Entry) *Problem {
	if in.RequestID != "" {
		req.RequestID = in.RequestID
	}
	if in.TraceParent != "" {
		req.TraceParent = in.TraceParent
	}
	if k := in.IdempotencyKey; k != "" {
		if req.IdempotencyKey != "" && req.IdempotencyKey != k {
			return problem(422, "idempotency_key_mismatch", "the Idempotency-Key header and the idempotency_key field differ; send one of them",
				FieldProblem{Field: "idempotency_key", Constraint: "const", Message: "must equal the Idempotency-Key header"})
		}
		req.IdempotencyKey = k
	}
	return nil
}

// auditSubmission records the outcome of one Admit call. A lost audit event is logged;
// the decision stands (an accepted job is already queued).
func (s *Service) auditSubmission(ctx context.Context, who *auth.Principal, in Entry, traceparent string, sub Submission, err error) {
	var p auth.Principal
	if who != nil {
		p = *who
	}
	traceID := trace.ID(traceparent)
	if traceID == "" && in.RequestID != "" {
		traceID = traceIDFor(in.RequestID)
	}
	result, resource, reason := auth.ResultAllowed, "", ""
	switch {
	case err == nil:
		resource = "job/" + sub.Job.ID
	default:
		pr, _ := s.refusal(err, "")
		result, reason = auth.ResultDenied, pr.Code
		if pr.Status >= 500 {
			result = auth.ResultError
		}
	}
	e := auth.Event(p, auth.ActionJobSubmit, resource, result, auth.Request{IP: in.IP, RequestID: in.RequestID, TraceID: traceID})
	e.Reason = reason
	if aerr := s.sec.Audit.Audit(context.WithoutCancel(ctx), e); aerr != nil {
		s.log.WithError(aerr).WithFields(logrus.Fields{"action": e.Action, "result": result, "request_id": in.RequestID}).Error("audit event lost")
	}
}

// QueueFullRetryAfter is the Retry-After, in seconds, of a 503 queue_full: the
// request stream reached its byte bound (streams.Topology.WorkMaxBytes) and refuses new
// jobs until workers drain it.
const QueueFullRetryAfter = "30"

// refusal renders an Admit error for any transport: the problem to answer with and,
// for a limit, the Retry-After value in whole seconds ("" when there is none). An
// error that is no refusal is logged (with where) and becomes a 503 that says to retry.
func (s *Service) refusal(err error, where string) (*Problem, string) {
	var ex *quota.Exceeded
	if errors.As(err, &ex) {
		retry := ""
		if ex.RetryAfter > 0 {
			retry = quota.RetryAfterSeconds(ex.RetryAfter)
		}
		return problem(http.StatusTooManyRequests, ex.Code(), ex.Error()), retry
	}
	var p *Problem
	if errors.As(err, &p) {
		return p, ""
	}
	if streams.IsFull(err) {
		if where != "" {
			s.log.WithError(err).WithField("endpoint", where).Warn("job refused: the request stream is full; raise --stream-max-bytes or add workers")
		}
		return problem(http.StatusServiceUnavailable, "queue_full", "the job queue is full; submit again after Retry-After seconds"), QueueFullRetryAfter
	}
	if where == "" {
		// Auditing only: the entry logs the cause when it answers.
		return problem(http.StatusServiceUnavailable, "unavailable", "the service could not complete the request; retry shortly"), ""
	}
	return s.asProblem(err, where), ""
}

// checkImagePresence applies rule 5 to a task without an input image (generate, which
// makes its images from a prompt): one sent anyway is refused. A missing image of the
// other tasks is refused by the transports' parsers and, at the latest, by rule 7.
func checkImagePresence(req *SubmitRequest) *Problem {
	if !schemas.TakesImage(req.Task) && (req.Image != nil || req.ImageKey != "") {
		return problem(422, "invalid_image", string(req.Task)+" takes no input image: send the prompt in params and leave the image out",
			FieldProblem{Field: "image", Constraint: "not", Message: "must be left out for " + string(req.Task)})
	}
	return nil
}

// promptDocument is the input of a job without an image (generate): its parameters as
// JSON, stored where an image would be, so the claim check, the result cache (same
// prompt, seed and settings, same images) and erasure treat it like any input. A
// missing seed is drawn here, after the idempotency check (a retry without a seed is
// the same request) and before the cache lookup (a drawn seed is a new picture), and is
// recorded in the job's parameters so the result can be repeated.
func promptDocument(req *SubmitRequest) ([]byte, error) {
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	if _, ok := req.Params["seed"]; !ok {
		req.Params["seed"] = float64(mathrand.Uint32())
	}
	doc, err := json.Marshal(req.Params) // sorted keys: equal requests, equal bytes
	if err != nil {
		return nil, fmt.Errorf("encode the parameters of %s: %w", req.Task, err)
	}
	return doc, nil
}
