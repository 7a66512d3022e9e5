// Package ingest is the front door: the HTTP API (and later the NATS entry) that
// validates uploads, stores the input image, creates the job record and publishes the
// job request into the pipeline.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Config tunes ingest.
type Config struct {
	// Limits bound uploads: bytes, pixels, longest side.
	Limits imageio.Limits
	// DefaultTenant and DefaultUser own jobs while authentication is off.
	DefaultTenant, DefaultUser string
	// DefaultTier applies when a request names none.
	DefaultTier schemas.Tier
}

func (c *Config) defaults() {
	if c.DefaultTenant == "" {
		c.DefaultTenant = "local"
	}
	if c.DefaultUser == "" {
		c.DefaultUser = "local"
	}
	if c.DefaultTier == "" {
		c.DefaultTier = schemas.TierNormal
	}
}

// QueueDepth reports how many requests wait ahead in a tier.
type QueueDepth func(ctx context.Context, tier schemas.Tier) (int, error)

// Service accepts jobs. Safe for concurrent use.
type Service struct {
	cfg     Config
	jobs    *streams.Jobs
	blobs   blob.Store
	pub     streams.Publisher
	catalog *models.Catalog
	depth   QueueDepth
	log     logrus.FieldLogger
	ready   func(ctx context.Context) error
	cache   *streams.ResultCache
	loaded  func() []string
}

// ReportLoaded sets where GET /v1/models learns which versions are loaded in this
// process.
func (s *Service) ReportLoaded(f func() []string) { s.loaded = f }

// UseCache turns on the result cache: a request identical to an earlier one (same
// tenant, input bytes, task, model version and parameters) completes at once with the
// stored results. Call before serving.
func (s *Service) UseCache(c *streams.ResultCache) { s.cache = c }

// NewService wires ingest. ready reports whether the pipeline can take work.
func NewService(cfg Config, jobs *streams.Jobs, blobs blob.Store, pub streams.Publisher, catalog *models.Catalog, depth QueueDepth, ready func(context.Context) error, log logrus.FieldLogger) *Service {
	cfg.defaults()
	return &Service{cfg: cfg, jobs: jobs, blobs: blobs, pub: pub, catalog: catalog, depth: depth, ready: ready, log: log}
}

// SubmitRequest is a validated-at-the-edge job request.
type SubmitRequest struct {
	Tenant, User string
	Tier         schemas.Tier
	Task         schemas.Task
	Model        string
	Version      string
	Params       map[string]any
	Image        []byte
	TraceParent  string
}

// Submit validates the request, stores the input and publishes the job. Validation
// failures are *Problem values with a 4xx status.
func (s *Service) Submit(ctx context.Context, req SubmitRequest) (*schemas.JobRecord, error) {
	if req.Tenant == "" {
		req.Tenant = s.cfg.DefaultTenant
	}
	if req.User == "" {
		req.User = s.cfg.DefaultUser
	}
	if req.Tier == "" {
		req.Tier = s.cfg.DefaultTier
	}
	if !req.Tier.Valid() {
		return nil, problem(422, "invalid_tier", fmt.Sprintf("tier %q is not one of premium, normal, free", req.Tier), FieldProblem{"tier", "must be premium, normal or free"})
	}
	if req.Task == "" {
		return nil, problem(422, "missing_field", "the task field is required", FieldProblem{"task", "required: e.g. remove-background"})
	}
	spec, err := s.catalog.Resolve(req.Task, req.Model, req.Version, mathrand.Float64())
	if err != nil {
		return nil, problem(422, "unknown_model", err.Error()+": GET /v1/models lists what is available", FieldProblem{"task", "no model serves this task/model/version"})
	}
	hdr, err := imageio.Inspect(req.Image, s.cfg.Limits)
	if err != nil {
		return nil, imageProblem(err)
	}
	if !trace.Valid(req.TraceParent) {
		req.TraceParent = trace.New()
	}

	id := NewJobID()
	now := time.Now().UTC()
	sum := sha256.Sum256(req.Image)
	key := "inputs/" + req.Tenant + "/" + id + "/original." + extOf(hdr.Format)
	info, err := s.blobs.Put(ctx, key, bytes.NewReader(req.Image), int64(len(req.Image)), hdr.Format.ContentType())
	if err != nil {
		return nil, fmt.Errorf("store input: %w", err)
	}
	input := schemas.ObjectRef{Key: key, Size: info.Size, SHA256: hex.EncodeToString(sum[:]), ContentType: hdr.Format.ContentType(), Width: hdr.Width, Height: hdr.Height}

	rec := &schemas.JobRecord{
		ID: id, Tenant: req.Tenant, User: req.User, Tier: req.Tier, Task: req.Task,
		Model: spec.Name, ModelVersion: spec.Version, Params: req.Params,
		Status: schemas.StatusQueued, Stage: schemas.StageIngest, Input: input,
		TraceID: trace.ID(req.TraceParent), SubmittedAt: now,
	}
	if hit, ok := s.cached(ctx, rec); ok {
		return hit, nil
	}
	if s.depth != nil {
		if n, err := s.depth(ctx, req.Tier); err == nil {
			rec.QueuePosition = n + 1
		}
	}
	if err := s.jobs.Create(ctx, rec); err != nil {
		return nil, err
	}
	ev := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: id, Tenant: req.Tenant, User: req.User,
		Tier: req.Tier, Task: req.Task, Model: spec.Name, ModelVersion: spec.Version,
		Params: req.Params, Input: input, TraceParent: req.TraceParent, SubmittedAt: now,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	h := nats.Header{}
	h.Set("traceparent", req.TraceParent)
	h.Set("Studio-Job-Id", id)
	if err := s.pub.Publish(ctx, streams.Output{Subject: schemas.RequestSubject(req.Tier, req.Task), MsgID: id + ":requested", Data: data, Header: h}); err != nil {
		_, _ = s.jobs.Update(context.WithoutCancel(ctx), id, func(r *schemas.JobRecord) error {
			r.Status = schemas.StatusFailed
			r.Error = &schemas.JobError{Code: "not_queued", Message: "the job could not be queued; submit it again", Stage: schemas.StageIngest}
			return nil
		})
		return nil, fmt.Errorf("queue job: %w", err)
	}
	s.log.WithFields(logrus.Fields{"job_id": id, "trace_id": rec.TraceID, "tenant": rec.Tenant, "user_id": rec.User, "task": rec.Task, "model": spec.ID(), "stage": "ingest"}).Info("job queued")
	return rec, nil
}

// cached completes rec from the result cache when an identical job already ran and
// its results still exist. Cache trouble is never fatal: the job then runs normally.
func (s *Service) cached(ctx context.Context, rec *schemas.JobRecord) (*schemas.JobRecord, bool) {
	if s.cache == nil {
		return nil, false
	}
	key := streams.CacheKey(rec.Tenant, rec.Input.SHA256, rec.Task, rec.Model, rec.ModelVersion, rec.Params)
	ce, ok, err := s.cache.Get(ctx, key)
	if err != nil || !ok {
		return nil, false
	}
	for _, ref := range ce.Results {
		if _, err := s.blobs.Stat(ctx, ref.Key); err != nil {
			_ = s.cache.Delete(ctx, key) // erased or expired results: recompute
			return nil, false
		}
	}
	now := time.Now().UTC()
	rec.Status, rec.Stage, rec.Percent = schemas.StatusSucceeded, schemas.StageStore, 100
	rec.CacheHit, rec.Results = true, ce.Results
	rec.StartedAt, rec.FinishedAt = now, now
	if err := s.jobs.Create(ctx, rec); err != nil {
		return nil, false
	}
	res := schemas.ResultFromRecord(rec, "")
	if data, err := json.Marshal(res); err == nil {
		_ = s.pub.Publish(ctx, streams.Output{Subject: schemas.ResultSubject(rec.Tenant, rec.Task), MsgID: rec.ID + ":result", Data: data})
	}
	s.log.WithFields(logrus.Fields{"job_id": rec.ID, "trace_id": rec.TraceID, "tenant": rec.Tenant, "user_id": rec.User, "cached_from": ce.JobID, "stage": "ingest"}).Info("job served from the result cache")
	return rec, true
}

// NewJobID returns a time-ordered, URL- and subject-safe id.
func NewJobID() string {
	return strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
}

func extOf(f imageio.Format) string {
	switch f {
	case imageio.FormatJPEG:
		return "jpg"
	case imageio.FormatPNG:
		return "png"
	case imageio.FormatWebP:
		return "webp"
	}
	return "bin"
}

// imageProblem maps an upload validation error to a problem with the right status.
func imageProblem(err error) *Problem {
	switch {
	case errors.Is(err, imageio.ErrEmpty):
		return problem(400, "empty_image", err.Error(), FieldProblem{"image", "the file is empty"})
	case errors.Is(err, imageio.ErrUnsupportedFormat):
		return problem(415, "unsupported_format", err.Error(), FieldProblem{"image", "send JPEG, PNG or WebP"})
	case errors.Is(err, imageio.ErrNotImage):
		return problem(415, "not_an_image", err.Error(), FieldProblem{"image", "the content is not an image"})
	case errors.Is(err, imageio.ErrTooLarge):
		return problem(413, "image_too_large", err.Error(), FieldProblem{"image", "over the size limit"})
	case errors.Is(err, imageio.ErrCorrupt):
		return problem(422, "corrupt_image", err.Error(), FieldProblem{"image", "the file is damaged"})
	}
	return problem(422, "invalid_image", err.Error(), FieldProblem{"image", "cannot be read"})
}
