package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// FeedbackRequest is the body of POST /v1/feedback.
type FeedbackRequest struct {
	JobID   string `json:"job_id" minLength:"1" maxLength:"64" doc:"the job the feedback is about"`
	Rating  string `json:"rating" enum:"up,down" doc:"thumbs up or down"`
	Comment string `json:"comment,omitempty" maxLength:"2000" doc:"optional free text"`
}

// FeedbackAccepted answers POST /v1/feedback.
type FeedbackAccepted struct {
	ID     string `json:"id" doc:"the feedback message id"`
	JobID  string `json:"job_id"`
	Rating int    `json:"rating" enum:"-1,1"`
}

// ModelInfo is one model version in GET /v1/models.
type ModelInfo struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Version  string       `json:"version"`
	Task     schemas.Task `json:"task"`
	Default  bool         `json:"default"`
	Weight   int          `json:"weight,omitempty"`
	Fallback string       `json:"fallback,omitempty"`
	Scale    int          `json:"scale,omitempty"`
	License  string       `json:"license,omitempty"`
	// TakesStyle says the model repaints in the style of a second image, sent with the
	// job as its style image (arbitrary-style models).
	TakesStyle bool `json:"takes_style,omitempty"`
	// Loaded is set when this process runs inference and has the version in memory.
	Loaded *bool `json:"loaded,omitempty"`
	// RoutedWeight is the version's share of unversioned jobs in the task's runtime
	// routing table (a rollout's), which replaces the manifest weights; absent without one.
	RoutedWeight *int `json:"routed_weight,omitempty"`
}

// TaskInfo is one task in GET /v1/tasks: its parameters with their ranges (what the
// web studio's sliders map to) and whether any model serves it here.
type TaskInfo struct {
	schemas.TaskSpec
	Served bool `json:"served"`
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Models []ModelInfo `json:"models"`
}

// TaskList is the body of GET /v1/tasks.
type TaskList struct {
	Tasks []TaskInfo `json:"tasks"`
}

// Health is the body of the health routes.
type Health struct {
	Status string `json:"status" enum:"ok,unavailable"`
	// Reason is the first reason the service is not ready.
	Reason  string   `json:"reason,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	// Checks (GET /health only) reports each dependency: "ok" or why not.
	Checks        map[string]string `json:"checks,omitempty"`
	APIVersion    string            `json:"api_version,omitempty"`
	UptimeSeconds float64           `json:"uptime_seconds,omitempty"`
}

type bodyOutput[T any] struct {
	Status int
	Body   T
}

func (s *Service) registerRoutes(api huma.API) {
	stable := versioned{version: "v1", latest: true}

	route(s, api, stable, huma.Operation{OperationID: "create-upload", Method: http.MethodPost, Path: "/uploads", Tags: []string{"uploads"},
		Summary:       "Presign an upload",
		Description:   "For large files or clients that cannot send multipart: returns a URL to PUT the raw file to (no other credentials needed, valid for 15 minutes) and the key to reference from a JSON job request. Each presign counts as one request against your rate limit, as a job submission does (429 rate_limited with Retry-After).",
		DefaultStatus: http.StatusCreated, Errors: []int{403, 429, 503}, Metadata: declare(scoped(auth.ScopeJobsWrite)),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[UploadTicket], error) {
		tenant, user := s.caller(ctx)
		// The admission's caller rules: an enabled user, and one request charged to the
		// same per-user rate limit as a job.
		if err := s.chargeRequest(ctx); err != nil {
			return nil, err
		}
		tk, err := s.newUploadTicket(ctx, tenant, user)
		if err != nil {
			return nil, s.asProblem(err, "upload")
		}
		return &bodyOutput[UploadTicket]{Status: http.StatusCreated, Body: tk}, nil
	})
	route(s, api, stable, huma.Operation{OperationID: "put-upload", Method: http.MethodPut, Path: "/uploads/{tenant}/{user}/{id}", Tags: []string{"uploads"},
		Summary:       "Upload a file to a presigned URL",
		Description:   "The body is the raw file. It is checked like a multipart upload (type by content, size, pixel count) before it is stored.",
		DefaultStatus: http.StatusCreated, Errors: []int{400, 403, 409, 410, 413, 415, 422, 503}, Metadata: declare(signedURL),
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}},
			"image/*":                  {Schema: &huma.Schema{Type: "string", Format: "binary"}},
		}},
	}, func(ctx context.Context, in *struct {
		Tenant    string `path:"tenant"`
		User      string `path:"user"`
		ID        string `path:"id"`
		Expires   string `query:"expires" required:"true"`
		Signature string `query:"signature" required:"true"`
	}) (*bodyOutput[UploadedObject], error) {
		w, r := exchangeFrom(ctx)
		obj, err := s.acceptUpload(ctx, w, r, in.Tenant, in.User, in.ID, in.Expires, in.Signature)
		if err != nil {
			return nil, s.asProblem(err, "upload")
		}
		return &bodyOutput[UploadedObject]{Status: http.StatusCreated, Body: *obj}, nil
	})

	route(s, api, stable, huma.Operation{OperationID: "send-feedback", Method: http.MethodPost, Path: "/feedback", Tags: []string{"feedback"},
		Summary: "Rate a result", Description: "Thumbs up or down on a job's result, with an optional comment; published on studio.feedback with the model version that produced it.",
		DefaultStatus: http.StatusAccepted, Errors: []int{404, 422, 503}, Metadata: declare(scoped(auth.ScopeJobsWrite)),
	}, func(ctx context.Context, in *struct{ Body FeedbackRequest }) (*bodyOutput[FeedbackAccepted], error) {
		out, err := s.feedback(ctx, in.Body)
		if err != nil {
			return nil, err
		}
		return &bodyOutput[FeedbackAccepted]{Status: http.StatusAccepted, Body: *out}, nil
	})

	route(s, api, stable, huma.Operation{OperationID: "list-models", Method: http.MethodGet, Path: "/models", Tags: []string{"models"},
		Summary: "List model versions", Metadata: declare(authenticated),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[ModelList], error) {
		return &bodyOutput[ModelList]{Status: http.StatusOK, Body: ModelList{Models: s.models()}}, nil
	})
	route(s, api, stable, huma.Operation{OperationID: "list-tasks", Method: http.MethodGet, Path: "/tasks", Tags: []string{"models"},
		Summary: "List tasks and their parameters", Description: "Each task's parameters with type, range, step and default: requests outside them are refused with invalid_params.", Metadata: declare(authenticated),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[TaskList], error) {
		out := &bodyOutput[TaskList]{Status: http.StatusOK}
		served := map[schemas.Task]bool{}
		for _, m := range s.catalog.All() {
			served[m.Task] = true
		}
		for _, t := range schemas.TaskSpecs() {
			out.Body.Tasks = append(out.Body.Tasks, TaskInfo{TaskSpec: t, Served: served[t.Task]})
		}
		return out, nil
	})

	health := func(id, path, summary string, h func(context.Context) (int, Health)) {
		register(api, huma.Operation{OperationID: id, Method: http.MethodGet, Path: path, Tags: []string{"health"}, Summary: summary, Metadata: declare(public),
			Responses: map[string]*huma.Response{"503": {Description: "not ready", Content: map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/Health"}}}}},
		}, func(ctx context.Context, _ *struct{}) (*bodyOutput[Health], error) {
			st, body := h(ctx)
			return &bodyOutput[Health]{Status: st, Body: body}, nil
		})
	}
	health("health-live", "/health/live", "Liveness: 200 while the process runs", func(context.Context) (int, Health) {
		return http.StatusOK, Health{Status: "ok"}
	})
	health("health-ready", "/health/ready", "Readiness: NATS connected, streams present, models loaded", func(ctx context.Context) (int, Health) {
		reasons, _ := s.readiness(ctx)
		if len(reasons) > 0 {
			return http.StatusServiceUnavailable, Health{Status: "unavailable", Reason: reasons[0], Reasons: reasons}
		}
		return http.StatusOK, Health{Status: "ok"}
	})
	health("health", "/health", "Health summary: readiness with each check", func(ctx context.Context) (int, Health) {
		reasons, checks := s.readiness(ctx)
		h := Health{Status: "ok", Checks: checks, APIVersion: APIVersion, UptimeSeconds: time.Since(s.started).Round(time.Second).Seconds()}
		if len(reasons) > 0 {
			h.Status, h.Reason, h.Reasons = "unavailable", reasons[0], reasons
			return http.StatusServiceUnavailable, h
		}
		return http.StatusOK, h
	})
}

// readiness checks the pipeline (NATS, streams: the ready func) and, when this process
// runs inference, that every task's default model is loaded.
func (s *Service) readiness(ctx context.Context) (reasons []string, checks map[string]string) {
	checks = map[string]string{}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	checks["pipeline"] = "ok"
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			checks["pipeline"] = err.Error()
			reasons = append(reasons, err.Error())
		}
	}
	// An empty list means this process runs no inference (it runs elsewhere, and its
	// workers report their own readiness); otherwise every task's default version
	// must be loaded.
	if ids := s.loadedIDs(); len(ids) > 0 && s.catalog != nil {
		loaded := map[string]bool{}
		for _, id := range ids {
			loaded[id] = true
		}
		var missing []string
		for _, m := range s.catalog.All() {
			if s.catalog.IsDefault(m) && !loaded[m.ID()] {
				missing = append(missing, m.ID())
			}
		}
		checks["models"] = "ok"
		if len(missing) > 0 {
			msg := "models not loaded: " + strings.Join(missing, ", ")
			checks["models"] = msg
			reasons = append(reasons, msg)
		}
	}
	return reasons, checks
}

func (s *Service) loadedIDs() []string {
	if s.loaded == nil {
		return nil
	}
	return s.loaded()
}

func (s *Service) models() []ModelInfo {
	loaded := map[string]bool{}
	if s.loaded != nil {
		for _, id := range s.loaded() {
			loaded[id] = true
		}
	}
	out := []ModelInfo{}
	for _, m := range s.catalog.All() {
		mi := ModelInfo{ID: m.ID(), Name: m.Name, Version: m.Version, Task: m.Task, Default: s.catalog.IsDefault(m),
			Weight: m.Weight, Fallback: m.Fallback, Scale: m.Scale, License: m.License, TakesStyle: m.TakesStyle()}
		if s.loaded != nil {
			l := loaded[m.ID()]
			mi.Loaded = &l
		}
		if r, ok := s.catalog.RoutingFor(m.Task); ok && r.Model == m.Name {
			w := r.Weights[m.Version]
			mi.RoutedWeight = &w
		}
		out = append(out, mi)
	}
	return out
}

// feedback publishes a rating of a job's result on studio.feedback.
func (s *Service) feedback(ctx context.Context, in FeedbackRequest) (*FeedbackAccepted, error) {
	rec, err := s.lookupField(ctx, in.JobID, "job_id")
	if err != nil {
		return nil, err
	}
	_, user := s.caller(ctx)
	rating := 1
	if in.Rating == "down" {
		rating = -1
	}
	fb := schemas.Feedback{
		Schema: schemas.SchemaFeedback, ID: NewJobID(), JobID: rec.ID, Tenant: rec.Tenant, User: user,
		Rating: rating, Comment: in.Comment, Model: rec.Model, ModelVersion: rec.ModelVersion, Time: time.Now().UTC(),
	}
	if err := fb.Validate(); err != nil {
		return nil, problem(422, "invalid_feedback", err.Error())
	}
	data, err := json.Marshal(fb)
	if err != nil {
		return nil, err
	}
	h := map[string][]string{"Studio-Job-Id": {rec.ID}}
	if rid := RequestIDFrom(ctx); rid != "" {
		h["Studio-Request-Id"] = []string{rid}
	}
	if err := s.pub.Publish(ctx, streams.Output{Subject: schemas.SubjectFeedback, MsgID: "feedback:" + fb.ID, Data: data, Header: h}); err != nil {
		return nil, s.asProblem(err, "feedback")
	}
	return &FeedbackAccepted{ID: fb.ID, JobID: rec.ID, Rating: rating}, nil
}

// chargeRequest applies the caller rules of Admit (jobs:write, an existing enabled
// user, one request charged to the user's rate limit) to a route that is no job
// submission but costs like one (presigning an upload), and renders a refusal as the
// answer (429 with Retry-After for the limit).
func (s *Service) chargeRequest(ctx context.Context) error {
	if s.sec == nil {
		return nil
	}
	p := s.principal(ctx)
	if _, _, err := s.admitCaller(ctx, &p, true); err != nil {
		prob, retry := s.refusal(err, "rate limit")
		if retry != "" {
			return huma.ErrorWithHeaders(prob, http.Header{"Retry-After": {retry}})
		}
		return prob
	}
	return nil
}
