package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

type submitInput struct {
	IdempotencyKey string `header:"Idempotency-Key" doc:"makes retries safe: the same key and body return the same job; the same key with another body answers 409. Keys are kept 24 hours."`
	TraceParent    string `header:"traceparent" doc:"W3C trace context; the job joins this trace"`
}

type submitOutput[T any] struct {
	Status   int
	Location string `header:"Location"`
	Replayed string `header:"Idempotent-Replayed" doc:"true when an Idempotency-Key matched an earlier request"`
	Body     T
}

type jobInput struct {
	ID string `path:"id" doc:"job id (a ULID)"`
}

type jobOutput[T any] struct {
	Body T
}

type listInput struct {
	Cursor string `query:"cursor" doc:"next_cursor of the previous page"`
	Limit  int    `query:"limit" minimum:"1" maximum:"100" default:"20" doc:"jobs per page"`
}

// caller is who makes an HTTP request: the authenticated principal, or the configured
// default tenant and user while security is off.
func (s *Service) caller(ctx context.Context) (tenant, user string) {
	p := s.principal(ctx)
	return p.Tenant, p.User
}

func (s *Service) registerJobRoutes(api huma.API) {
	v1 := versioned{version: "v1", deprecated: true}
	v2 := versioned{version: "v2", latest: true}
	tags := []string{"jobs"}

	submitOp := func() huma.Operation {
		return huma.Operation{
			OperationID: "submit-job", Method: http.MethodPost, Path: "/jobs", Tags: tags,
			Summary:       "Submit a job",
			Description:   "Validates the image by content (JPEG, PNG, WebP), its size and pixel count (read from the header before decoding) and the task's parameter ranges; strips EXIF/XMP metadata (keeping the orientation); stores it and queues the job. With `steps` (at most 4) the job is a chain: each step runs through the pipeline on the previous step's image, its outputs are kept as `step<i>.<task>.<name>`, and a chain whose step cannot take the previous step's output is refused with 422 `invalid_chain` naming `steps.<i>`. Answers 202 with the job, its status and WebSocket URLs and its queue position.",
			DefaultStatus: http.StatusAccepted, RequestBody: jsonAndMultipart(),
			Errors:   []int{400, 409, 413, 415, 422, 503},
			Metadata: declare(scoped(auth.ScopeJobsWrite).audited(auth.ActionJobSubmit)),
		}
	}
	route(s, api, v1, submitOp(), func(ctx context.Context, in *submitInput) (*submitOutput[JobResponse], error) {
		rec, replayed, r, err := s.handleSubmit(ctx, in)
		if err != nil {
			return nil, err
		}
		return &submitOutput[JobResponse]{Status: http.StatusAccepted, Location: jobPath("v1", rec.ID), Replayed: replayedHeader(replayed), Body: viewV1(rec, s.wsBase(r))}, nil
	})
	route(s, api, v2, submitOp(), func(ctx context.Context, in *submitInput) (*submitOutput[JobV2], error) {
		rec, replayed, r, err := s.handleSubmit(ctx, in)
		if err != nil {
			return nil, err
		}
		return &submitOutput[JobV2]{Status: http.StatusAccepted, Location: jobPath("v2", rec.ID), Replayed: replayedHeader(replayed), Body: viewV2(rec, s.wsBase(r))}, nil
	})

	getOp := func() huma.Operation {
		return huma.Operation{OperationID: "get-job", Method: http.MethodGet, Path: "/jobs/{id}", Tags: tags,
			Summary: "Get a job", Description: "The job's status, stage, percent, queue position, per-stage timings and, once it succeeded, its results.",
			Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsRead))}
	}
	route(s, api, v1, getOp(), func(ctx context.Context, in *jobInput) (*jobOutput[JobResponse], error) {
		rec, err := s.lookup(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		return &jobOutput[JobResponse]{Body: viewV1(rec, s.wsBase(r))}, nil
	})
	route(s, api, v2, getOp(), func(ctx context.Context, in *jobInput) (*jobOutput[JobV2], error) {
		rec, err := s.lookup(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		return &jobOutput[JobV2]{Body: viewV2(rec, s.wsBase(r))}, nil
	})

	listOp := func() huma.Operation {
		return huma.Operation{OperationID: "list-jobs", Method: http.MethodGet, Path: "/jobs", Tags: tags,
			Summary: "List your jobs", Description: "Your jobs, newest first, a page at a time: pass next_cursor as cursor for the next page.",
			Errors: []int{503}, Metadata: declare(scoped(auth.ScopeJobsRead))}
	}
	route(s, api, v1, listOp(), func(ctx context.Context, in *listInput) (*jobOutput[JobList], error) {
		recs, next, err := s.list(ctx, in)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		out := JobList{Jobs: []JobResponse{}, NextCursor: next}
		for _, rec := range recs {
			out.Jobs = append(out.Jobs, viewV1(rec, s.wsBase(r)))
		}
		return &jobOutput[JobList]{Body: out}, nil
	})
	route(s, api, v2, listOp(), func(ctx context.Context, in *listInput) (*jobOutput[JobListV2], error) {
		recs, next, err := s.list(ctx, in)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		out := JobListV2{Items: []JobV2{}, NextCursor: next}
		for _, rec := range recs {
			out.Items = append(out.Items, viewV2(rec, s.wsBase(r)))
		}
		return &jobOutput[JobListV2]{Body: out}, nil
	})

	cancelOp := func() huma.Operation {
		return huma.Operation{OperationID: "cancel-job", Method: http.MethodDelete, Path: "/jobs/{id}", Tags: tags,
			Summary:     "Cancel a job",
			Description: "Cancels a queued or running job: the record says cancelled at once, stages skip it, and a cancelled result event is published. Cancelling a cancelled job is a no-op; a finished job answers 409.",
			Errors:      []int{404, 409, 503}, Metadata: declare(scoped(auth.ScopeJobsWrite))}
	}
	route(s, api, v1, cancelOp(), func(ctx context.Context, in *jobInput) (*jobOutput[JobResponse], error) {
		rec, err := s.cancel(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		return &jobOutput[JobResponse]{Body: viewV1(rec, s.wsBase(r))}, nil
	})
	route(s, api, v2, cancelOp(), func(ctx context.Context, in *jobInput) (*jobOutput[JobV2], error) {
		rec, err := s.cancel(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		_, r := exchangeFrom(ctx)
		return &jobOutput[JobV2]{Body: viewV2(rec, s.wsBase(r))}, nil
	})

	stable := versioned{version: "v1", latest: true}
	events := huma.Operation{OperationID: "job-events", Method: http.MethodGet, Path: "/jobs/{id}/events", Tags: tags,
		Summary: "Follow a job (WebSocket or server-sent events)",
		Description: "With `Upgrade: websocket`: JSON text frames (EventFrame) — `state` first (the current state, also after a reconnect), then `progress` on every stage change and percent, `queue` when the queue position moves; a ping every 30 s; closed normally after the final state. " +
			"Without it: server-sent events, `event: job` with the job (current state first), `event: queue`, and `: ping` comments.",
		Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsRead)),
		Responses: map[string]*huma.Response{
			"101": {Description: "Switching Protocols: WebSocket frames are EventFrame JSON"},
			"200": {Description: "Server-sent events", Content: map[string]*huma.MediaType{"text/event-stream": {Schema: &huma.Schema{Type: "string"}}}},
		},
	}
	api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[EventFrame](), true, "")
	route(s, api, stable, events, func(ctx context.Context, in *jobInput) (*huma.StreamResponse, error) {
		rec, err := s.lookup(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			w, r := exchangeFrom(ctx)
			s.serveEvents(w, r, rec)
		}}, nil
	})

	results := huma.Operation{OperationID: "get-result", Method: http.MethodGet, Path: "/jobs/{id}/results/{name}", Tags: tags,
		Summary: "Download a result", Description: "A result file of a succeeded job (cutout.png, mask.png, image.png, thumbnail.png, or .jpg / .webp as the job's format param says; for ocr text.json and overlay.png); the names are in the job's downloads / results, and Content-Type is the file's.",
		Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsRead)),
		Responses: map[string]*huma.Response{"200": binaryResponse("the file")},
	}
	route(s, api, stable, results, func(ctx context.Context, in *struct {
		ID   string `path:"id"`
		Name string `path:"name" doc:"result name, with or without its extension"`
	}) (*huma.StreamResponse, error) {
		rec, err := s.lookup(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		ref, ok := rec.Results[strings.TrimSuffix(in.Name, path.Ext(in.Name))]
		if !ok {
			ref, ok = rec.Results[in.Name] // a chain's step names hold dots: "step0.upscale.image"
		}
		if !ok {
			return nil, problem(404, "no_such_result", fmt.Sprintf("job %s has no result %q (status %s)", rec.ID, in.Name, rec.Status),
				FieldProblem{Field: "name", Constraint: "enum", Message: "not a result of this job"})
		}
		s.audit(ctx, auth.ActionDownload, ref.Key, auth.ResultAllowed)
		return s.streamObject(ctx, ref, rec.ID+"-"+path.Base(ref.Key))
	})
	input := huma.Operation{OperationID: "get-input", Method: http.MethodGet, Path: "/jobs/{id}/input", Tags: tags,
		Summary: "Download the input", Description: "The stored input image, as stored: metadata stripped, orientation kept.",
		Errors: []int{404, 503}, Responses: map[string]*huma.Response{"200": binaryResponse("the input image")},
		Metadata: declare(scoped(auth.ScopeJobsRead)),
	}
	route(s, api, stable, input, func(ctx context.Context, in *jobInput) (*huma.StreamResponse, error) {
		rec, err := s.lookup(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		s.audit(ctx, auth.ActionDownload, rec.Input.Key, auth.ResultAllowed)
		return s.streamObject(ctx, rec.Input, rec.ID+"-"+path.Base(rec.Input.Key))
	})
}

func replayedHeader(replayed bool) string {
	if replayed {
		return "true"
	}
	return ""
}

func binaryResponse(desc string) *huma.Response {
	return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
		"image/png": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		"image/*":   {Schema: &huma.Schema{Type: "string", Format: "binary"}},
	}}
}

// handleSubmit is the HTTP entry's adapter to Admit: name the caller, admit (which
// reads the body once the caller may submit), and render a refusal as a problem (with
// Retry-After for a limit).
func (s *Service) handleSubmit(ctx context.Context, in *submitInput) (*schemas.JobRecord, bool, *http.Request, error) {
	w, r := exchangeFrom(ctx)
	sub, err := s.Admit(ctx, s.httpCaller(ctx), Entry{
		RequestID: RequestIDFrom(ctx), TraceParent: in.TraceParent,
		IdempotencyKey: in.IdempotencyKey, IP: s.auditRequest(r).IP,
	}, func() (SubmitRequest, error) {
		req, p := s.parseSubmitBody(w, r)
		if p != nil {
			return req, p
		}
		return req, nil
	})
	if err != nil {
		prob, retry := s.refusal(err, r.URL.Path)
		if retry != "" {
			return nil, false, r, huma.ErrorWithHeaders(prob, http.Header{"Retry-After": {retry}})
		}
		return nil, false, r, prob
	}
	return sub.Job, sub.Replayed, r, nil
}

// httpCaller is who makes an HTTP request, for Admit: the principal the middleware
// authenticated, nil when there is none, or the default user while security is off.
func (s *Service) httpCaller(ctx context.Context) *auth.Principal {
	if p, ok := auth.FromContext(ctx); ok {
		return &p
	}
	if s.sec != nil {
		return nil
	}
	p := s.principal(ctx)
	return &p
}

// lookup returns a job record the caller may see (the visibility rule, visible; the
// route declared the scope) or a 404 problem: a job of another user or tenant is reported exactly like a
// missing one. Every route that takes a job id reaches the job through it.
func (s *Service) lookup(ctx context.Context, id string) (*schemas.JobRecord, error) {
	return s.lookupField(ctx, id, "id")
}

// lookupField is lookup for a job id given in field (a path parameter or body field).
func (s *Service) lookupField(ctx context.Context, id, field string) (*schemas.JobRecord, error) {
	rec, err := s.jobs.Get(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil, jobNotFound(id, field)
	}
	if err != nil {
		return nil, s.asProblem(err, "job lookup")
	}
	if rec.Shadow { // a replay's run (studio replay) is no job of the user's
		return nil, jobNotFound(id, field)
	}
	if err := s.visible(ctx, rec, field); err != nil {
		return nil, err
	}
	return rec, nil
}

// jobNotFound is the one answer for a job that is missing or not the caller's.
func jobNotFound(id, field string) *Problem {
	return problem(404, "job_not_found", fmt.Sprintf("no job %q", id), FieldProblem{Field: field, Constraint: "exists", Message: "no such job"})
}

func (s *Service) list(ctx context.Context, in *listInput) ([]*schemas.JobRecord, string, error) {
	tenant, user := s.caller(ctx)
	if in.Limit == 0 {
		in.Limit = 20
	}
	recs, next, err := s.listJobs(ctx, tenant, user, in.Cursor, in.Limit)
	if err != nil {
		return nil, "", s.asProblem(err, "list jobs")
	}
	return recs, next, nil
}

// cancel marks a queued or running job cancelled and announces it.
func (s *Service) cancel(ctx context.Context, id string) (*schemas.JobRecord, error) {
	if s.sec != nil {
		if _, err := s.lookup(ctx, id); err != nil {
			return nil, err
		}
	}
	var already bool
	now := time.Now().UTC()
	rec, err := s.jobs.Update(ctx, id, func(r *schemas.JobRecord) error {
		switch r.Status {
		case schemas.StatusCancelled:
			already = true
			return streams.ErrNoChange
		case schemas.StatusSucceeded, schemas.StatusFailed:
			return problem(409, "job_finished", fmt.Sprintf("job %s already %s; only queued or running jobs can be cancelled", r.ID, r.Status),
				FieldProblem{Field: "id", Constraint: "status", Message: "job is " + string(r.Status)})
		}
		r.Status = schemas.StatusCancelled
		r.FinishedAt = now
		r.QueuePosition = 0
		if st := r.Stages[r.Stage]; st != nil && st.FinishedAt.IsZero() {
			st.FinishedAt = now
			st.DurationMS = float64(now.Sub(st.StartedAt).Microseconds()) / 1000
		}
		return nil
	})
	if errors.Is(err, jobs.ErrNotFound) {
		return nil, problem(404, "job_not_found", fmt.Sprintf("no job %q", id), FieldProblem{Field: "id", Constraint: "exists", Message: "no such job"})
	}
	if err != nil {
		return nil, s.asProblem(err, "cancel job")
	}
	s.audit(ctx, auth.ActionJobCancel, "job/"+rec.ID, auth.ResultAllowed)
	if !already {
		s.releaseActive(ctx, rec)
		s.publishResult(ctx, rec)
		s.log.WithFields(map[string]any{"job_id": rec.ID, "trace_id": rec.TraceID, "tenant": rec.Tenant, "stage": string(rec.Stage), "request_id": RequestIDFrom(ctx)}).Info("job cancelled")
	}
	return rec, nil
}

// streamObject answers with a stored object.
func (s *Service) streamObject(ctx context.Context, ref schemas.ObjectRef, filename string) (*huma.StreamResponse, error) {
	rc, info, err := s.blobs.Get(ctx, ref.Key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, problem(404, "object_gone", "the file is no longer stored")
	}
	if err != nil {
		return nil, s.asProblem(err, "download")
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer rc.Close()
		ct := info.ContentType
		if ct == "" {
			ct = ref.ContentType
		}
		hctx.SetHeader("Content-Type", ct)
		hctx.SetHeader("Content-Length", strconv.FormatInt(info.Size, 10))
		hctx.SetHeader("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
		hctx.SetHeader("ETag", `"`+info.SHA256+`"`)
		hctx.SetHeader("Cache-Control", "private, max-age=3600, immutable")
		hctx.SetStatus(http.StatusOK)
		_, _ = io.Copy(hctx.BodyWriter(), rc)
	}}, nil
}
