// Package ingest is the front door: the versioned HTTP API (with WebSocket and SSE
// progress, presigned uploads, cancellation, feedback and interactive docs), the NATS
// request-reply entry for upstream systems, and the webhook sender. It validates
// requests, strips metadata from uploads, stores the input image, creates the job
// record and publishes the job request into the pipeline. It talks to NATS only through
// package streams.
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
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Config tunes ingest. The zero value works: every field has a default.
type Config struct {
	// Limits bound uploads: bytes, pixels, longest side.
	Limits imageio.Limits
	// DefaultTenant and DefaultUser own jobs while authentication is off.
	DefaultTenant, DefaultUser string
	// DefaultTier applies when a request names none.
	DefaultTier schemas.Tier
	// PublicURL is the base URL clients use (http://host:port); it makes websocket_url
	// absolute. Empty derives it from each request's Host.
	PublicURL string
	// CORSOrigins lists the browser origins allowed to call the API ("*" for any).
	// Empty sends no CORS headers, so only same-origin pages can call.
	CORSOrigins []string
	// UploadSecret signs presigned upload URLs. Every ingest replica needs the same
	// one; empty uses a random secret, which works for a single process.
	UploadSecret string
	// UploadURLExpiry bounds how long a presigned upload URL works (default 15m).
	UploadURLExpiry time.Duration
	// UploadQuota and UploadQuotaBytes bound the presigned uploads one user has stored
	// at once, in count and bytes (defaults DefaultUploadQuota, DefaultUploadQuotaBytes);
	// the retention sweeper deletes uploads after --upload-ttl.
	UploadQuota      int
	UploadQuotaBytes int64
	// WebhookSecret is the key each tenant's signing secret is derived from
	// (TenantWebhookSecret). Empty refuses callback_url.
	WebhookSecret string
	// WebhookPreviousSecret, set during a rotation, adds a second signature made with
	// the tenant's secret under the previous key, so receivers not yet moved on still
	// verify.
	WebhookPreviousSecret string
	// WebhookAttempts bounds deliveries of one webhook (default 8); WebhookBackoff is
	// the first retry delay, doubled each time up to WebhookMaxBackoff (1s, 10m).
	WebhookAttempts                   int
	WebhookBackoff, WebhookMaxBackoff time.Duration
	// WebhookTimeout bounds one call (default 10s).
	WebhookTimeout time.Duration
	// WebhookTenantConcurrency bounds one tenant's webhook calls in flight per ingest
	// process (default 4), so one slow receiver cannot take the senders of every
	// tenant (tenantGate).
	WebhookTenantConcurrency int
	// AllowPrivateCallbacks lets callback URLs reach loopback and private networks
	// (development and tests). Off, such addresses are refused when connecting, which
	// also defeats DNS rebinding.
	AllowPrivateCallbacks bool
	// PingInterval spaces WebSocket pings and SSE comments (default 30s).
	PingInterval time.Duration
	// QueueInterval spaces queue-position updates to a waiting client (default 2s).
	QueueInterval time.Duration
	// V1Sunset is when the deprecated v1 job routes stop working (default 2027-11-30).
	V1Sunset time.Time
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
	if c.Limits.MaxBytes <= 0 {
		c.Limits.MaxBytes = imageio.DefaultMaxBytes
	}
	if c.UploadURLExpiry <= 0 {
		c.UploadURLExpiry = 15 * time.Minute
	}
	if c.UploadQuota <= 0 {
		c.UploadQuota = DefaultUploadQuota
	}
	if c.UploadQuotaBytes <= 0 {
		c.UploadQuotaBytes = DefaultUploadQuotaBytes
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = 8
	}
	if c.WebhookBackoff <= 0 {
		c.WebhookBackoff = time.Second
	}
	if c.WebhookMaxBackoff <= 0 {
		c.WebhookMaxBackoff = 10 * time.Minute
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.WebhookTenantConcurrency <= 0 {
		c.WebhookTenantConcurrency = 4
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.QueueInterval <= 0 {
		c.QueueInterval = 2 * time.Second
	}
	if c.V1Sunset.IsZero() {
		c.V1Sunset = time.Date(2027, 11, 30, 0, 0, 0, 0, time.UTC)
	}
}

// QueueDepth reports how many requests wait in a tier (pending plus in progress).
type QueueDepth func(ctx context.Context, tier schemas.Tier) (int, error)

// Service accepts jobs. Safe for concurrent use.
type Service struct {
	pages      http.Handler
	pageRoutes []string
	cfg        Config
	jobs       *jobs.Store
	blobs      blob.Store
	pub        streams.Publisher
	catalog    *models.Catalog
	depth      QueueDepth
	log        logrus.FieldLogger
	ready      func(ctx context.Context) error
	cache      *jobs.Cache
	loaded     func() []string
	idem       *streams.KV
	index      *jobs.Index
	// webhookSecrets holds each tenant's webhook secret generation (nil: generation 0).
	webhookSecrets *auth.WebhookSecrets
	uploadKey      []byte
	started        time.Time
	closing        chan struct{}
	closeOnce      sync.Once
	sec            *Security
	// routes is the route table of the last Handler (Routes).
	routes   *routeTable
	rollouts *rollout.Manager
	// live are the open event streams by user and API key, closed when the user is
	// disabled or deleted or the key revoked on any replica (revocation.go).
	live liveStreams
}

// Close ends the open event streams (WebSocket clients are told to reconnect) so that
// an HTTP server shutdown is not held up by them. Call it when shutdown begins.
func (s *Service) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// Option configures a Service.
type Option func(*Service)

// WithIdempotency keeps Idempotency-Key claims in kv (jobs.OpenIdempotency). Without it a
// request carrying a key is refused with 503, never silently run twice.
func WithIdempotency(kv *streams.KV) Option { return func(s *Service) { s.idem = kv } }

// WithJobIndex keeps the per-caller job index and webhook targets in index. Without
// it GET /v1/jobs answers 503 and callback_url is refused.
func WithJobIndex(index *jobs.Index) Option { return func(s *Service) { s.index = index } }

// WithWebhookSecrets reads each tenant's webhook secret generation from ws, so that a
// tenant's secret can be rotated on its own (POST /v2/admin/webhook-secret/rotate,
// `studio webhooks rotate-tenant`). Without it every tenant signs with generation 0.
func WithWebhookSecrets(ws *auth.WebhookSecrets) Option {
	return func(s *Service) { s.webhookSecrets = ws }
}

// ReportLoaded sets where GET /v1/models and readiness learn which versions are loaded
// in this process.
func (s *Service) ReportLoaded(f func() []string) { s.loaded = f }

// UseCache turns on the result cache: a request identical to an earlier one (same
// tenant, input bytes, task, model version and parameters) completes at once with the
// stored results. Call before serving.
func (s *Service) UseCache(c *jobs.Cache) { s.cache = c }

// NewService wires ingest. ready reports whether the pipeline can take work.
func NewService(cfg Config, jobStore *jobs.Store, blobs blob.Store, pub streams.Publisher, catalog *models.Catalog, depth QueueDepth, ready func(context.Context) error, log logrus.FieldLogger, opts ...Option) *Service {
	cfg.defaults()
	s := &Service{cfg: cfg, jobs: jobStore, blobs: blobs, pub: pub, catalog: catalog, depth: depth, ready: ready, log: log, started: time.Now(), closing: make(chan struct{})}
	if cfg.UploadSecret != "" {
		s.uploadKey = []byte(cfg.UploadSecret)
	} else {
		s.uploadKey = make([]byte, 32)
		_, _ = rand.Read(s.uploadKey)
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SubmitRequest is a job request from any entry (multipart, JSON, NATS) before the
// checks that need the catalog, the object store or the image. Tenant, User and Tier
// are what the request asks for; Admit decides what applies.
type SubmitRequest struct {
	Tenant, User string
	Tier         schemas.Tier
	Task         schemas.Task
	Model        string
	Version      string
	Params       map[string]any
	// Image holds the file; ImageKey instead names an object under uploads/<tenant>/.
	Image    []byte
	ImageKey string
	// ImageField names where the image came from in the caller's request ("image",
	// "image.data", "image.key") so problems point at the right field.
	ImageField string
	// Style and StyleKey are the style image of an arbitrary-style job (a model with
	// a style input), as Image and ImageKey; StyleField names where it came from.
	Style          []byte
	StyleKey       string
	StyleField     string
	TraceParent    string
	RequestID      string
	CallbackURL    string
	IdempotencyKey string
	// Batch is the batch the job belongs to; Admit sets it from Entry.Batch.
	Batch string
	// Steps chains tasks (schemas.JobRequest.Steps); validation moves the first step
	// into Task, Model, Version and Params and resolves every step's model into chain.
	Steps []schemas.StepRequest
	chain []schemas.ChainStep
}

// Submit admits a job for the principal in ctx (auth.NewContext), or for nobody: it is
// Admit for callers inside the process. Refusals are *Problem values with a 4xx status
// or a *quota.Exceeded.
func (s *Service) Submit(ctx context.Context, req SubmitRequest) (*schemas.JobRecord, error) {
	var who *auth.Principal
	if p, ok := auth.FromContext(ctx); ok {
		who = &p
	}
	sub, err := s.Admit(ctx, who, Entry{RequestID: req.RequestID}, func() (SubmitRequest, error) { return req, nil })
	return sub.Job, err
}

// enqueue stores an admitted job's input without its metadata, claims its idempotency
// key, indexes it and publishes it (or completes it from the result cache). The bool
// reports that a concurrent identical request created the job first.
func (s *Service) enqueue(ctx context.Context, req *SubmitRequest, spec models.Spec, jobID, idemKey, fp string, hdr, styleHdr imageio.Header) (rec *schemas.JobRecord, replayed bool, err error) {
	stored, ext, ctype := req.Image, "json", "application/json"
	if schemas.TakesImage(req.Task) {
		stored, ext, ctype = stripMetadata(req.Image, hdr), extOf(hdr.Format), hdr.Format.ContentType()
	}
	if idemKey != "" {
		id, err := s.claimIdempotency(ctx, idemKey, fp, jobID)
		switch {
		case errors.Is(err, errClaimTaken):
			jobID = id // a concurrent identical request claimed first: share its job
		case err != nil:
			return nil, false, err
		default:
			jobID = id
		}
	}

	now := time.Now().UTC()
	rec = &schemas.JobRecord{
		ID: jobID, Tenant: req.Tenant, User: req.User, Tier: req.Tier, Task: req.Task,
		Model: spec.Name, ModelVersion: spec.Version, Params: req.Params,
		Status: schemas.StatusQueued, Stage: schemas.StageIngest,
		TraceID: trace.ID(req.TraceParent), Batch: req.Batch, SubmittedAt: now, Chain: req.chain,
	}
	// The index entry comes first: it is what ties the job, and so its input object, to
	// the user for erasure; an input stored without it could outlive its user.
	if err := s.indexJob(ctx, rec, req); err != nil {
		return nil, false, err
	}
	key := "inputs/" + req.Tenant + "/" + jobID + "/original." + ext
	info, err := s.blobs.Put(ctx, key, blob.NewBytesReader(stored), int64(len(stored)), ctype)
	if err != nil {
		return nil, false, fmt.Errorf("store input: %w", err)
	}
	rec.Input = schemas.ObjectRef{Key: key, Size: info.Size, SHA256: digestOf(stored, info), ContentType: ctype, Width: hdr.Width, Height: hdr.Height}
	if req.Style != nil {
		// Beside the input, under the job's prefix: erasure and retention remove it
		// with the job.
		style := stripMetadata(req.Style, styleHdr)
		skey := "inputs/" + req.Tenant + "/" + jobID + "/style." + extOf(styleHdr.Format)
		sinfo, err := s.blobs.Put(ctx, skey, bytes.NewReader(style), int64(len(style)), styleHdr.Format.ContentType())
		if err != nil {
			return nil, false, fmt.Errorf("store style image: %w", err)
		}
		rec.Style = &schemas.ObjectRef{Key: skey, Size: sinfo.Size, SHA256: digestOf(style, sinfo), ContentType: styleHdr.Format.ContentType(), Width: styleHdr.Width, Height: styleHdr.Height}
	}
	if len(rec.Chain) > 0 {
		return s.enqueueChain(ctx, req, rec)
	}
	if hit, ok, err := s.cached(ctx, rec); ok || err != nil {
		return s.settleCreate(ctx, hit, jobID, err)
	}
	if s.depth != nil {
		if n, err := s.depth(ctx, req.Tier); err == nil {
			rec.QueuePosition = n + 1
		}
	}
	if err := s.jobs.Create(ctx, rec); err != nil {
		return s.settleCreate(ctx, nil, jobID, err)
	}
	ev := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: jobID, Tenant: req.Tenant, User: req.User,
		Tier: req.Tier, Task: req.Task, Model: spec.Name, ModelVersion: spec.Version,
		Params: req.Params, Input: rec.Input, Style: rec.Style, TraceParent: req.TraceParent, SubmittedAt: now,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	h := map[string][]string{"traceparent": {req.TraceParent}, "Studio-Job-Id": {jobID}}
	if req.RequestID != "" {
		h["Studio-Request-Id"] = []string{req.RequestID}
	}
	// The message id de-duplicates in the stream as well: with an idempotency key it
	// is derived from the key, so even two racing replicas publish one request.
	msgID := jobID + ":requested"
	if idemKey != "" {
		msgID = "idem:" + idemKey[2:] // "<tenant>.<user>.<hash>"
	}
	if err := s.pub.Publish(ctx, streams.Output{Subject: schemas.RequestSubject(req.Tier, req.Task), MsgID: msgID, Data: data, Header: h}); err != nil {
		_, _ = s.jobs.Update(context.WithoutCancel(ctx), jobID, func(r *schemas.JobRecord) error {
			r.Status = schemas.StatusFailed
			r.Error = &schemas.JobError{Code: "not_queued", Message: "the job could not be queued; submit it again", Stage: schemas.StageIngest}
			return nil
		})
		return nil, false, fmt.Errorf("queue job: %w", err)
	}
	s.log.WithFields(logrus.Fields{"job_id": jobID, "trace_id": rec.TraceID, "request_id": req.RequestID, "tenant": rec.Tenant, "user_id": rec.User, "task": rec.Task, "model": spec.ID(), "stage": "ingest"}).Info("job queued")
	return rec, false, nil
}

// digestOf is the hex SHA-256 of data, which the store put as info: the digest the
// store computed while storing it (the NATS object store does), else computed here,
// so the bytes are hashed once.
func digestOf(data []byte, info blob.Info) string {
	if info.SHA256 != "" && info.Size == int64(len(data)) {
		return info.SHA256
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// settleCreate finishes a submission whose job record may already exist: a concurrent
// request with the same idempotency key created it first, and its job is the answer.
func (s *Service) settleCreate(ctx context.Context, rec *schemas.JobRecord, jobID string, err error) (*schemas.JobRecord, bool, error) {
	if errors.Is(err, jobs.ErrExists) {
		existing, gerr := s.jobs.Get(ctx, jobID)
		if gerr != nil {
			return nil, false, gerr
		}
		return existing, true, nil
	}
	return rec, false, err
}

// validate fills defaults and checks everything that needs no I/O. It returns the
// resolved model or the first problem, naming one field.
func (s *Service) validate(req *SubmitRequest) (models.Spec, *Problem) {
	if req.Tenant == "" {
		req.Tenant = s.cfg.DefaultTenant
	}
	if req.User == "" {
		req.User = s.cfg.DefaultUser
	}
	if req.Tier == "" {
		req.Tier = s.cfg.DefaultTier
	}
	if req.ImageField == "" {
		req.ImageField = "image"
	}
	if !trace.Valid(req.TraceParent) {
		if req.RequestID != "" {
			req.TraceParent = traceparentFor(req.RequestID)
		} else {
			req.TraceParent = trace.New()
		}
	}
	if err := schemas.ValidToken(req.Tenant); err != nil {
		return models.Spec{}, problem(422, "invalid_tenant", err.Error(), FieldProblem{Field: "tenant", Constraint: "pattern", Message: "letters, digits, '-' and '_' only"})
	}
	if err := schemas.ValidToken(req.User); err != nil {
		// User ids are names in KV keys and subjects; one that is not could never be
		// found again, for erasure or anything else.
		return models.Spec{}, problem(422, "invalid_user", err.Error(), FieldProblem{Field: "user", Constraint: "pattern", Message: "letters, digits, '-' and '_' only, at most 64"})
	}
	if !req.Tier.Valid() {
		return models.Spec{}, problem(422, "invalid_tier", fmt.Sprintf("tier %q is not one of premium, normal, free", req.Tier), FieldProblem{Field: "tier", Constraint: "enum", Message: "must be premium, normal or free"})
	}
	if len(req.Steps) > 0 {
		if p := s.resolveChain(req); p != nil {
			return models.Spec{}, p
		}
	}
	if req.Task == "" {
		return models.Spec{}, problem(422, "missing_field", "the task field is required", FieldProblem{Field: "task", Constraint: "required", Message: "required: e.g. remove-background"})
	}
	spec, err := s.catalog.Resolve(req.Task, req.Model, req.Version, mathrand.Float64())
	if err != nil {
		return models.Spec{}, problem(422, "unknown_model", err.Error()+": GET /v1/models lists what is available", FieldProblem{Field: "task", Constraint: "enum", Message: "no model serves this task/model/version"})
	}
	if errs := schemas.ValidateParams(req.Task, req.Params); len(errs) > 0 {
		return models.Spec{}, problem(422, "invalid_params", "parameters out of range for "+string(req.Task)+": "+fieldsDetail(errs), errs...)
	}
	if req.CallbackURL != "" {
		if p := s.checkCallbackURL(req.CallbackURL); p != nil {
			return models.Spec{}, p
		}
	}
	if k := req.IdempotencyKey; k != "" {
		if !validIdempotencyKey(k) {
			return models.Spec{}, problem(400, "invalid_idempotency_key", "an Idempotency-Key is 1 to 255 printable ASCII characters (a UUID is ideal)",
				FieldProblem{Field: "Idempotency-Key", Constraint: "pattern", Message: "1-255 printable ASCII characters"})
		}
		if s.idem == nil {
			return models.Spec{}, problem(503, "unavailable", "this server keeps no idempotency keys; retry without the Idempotency-Key header or ask the operator to enable them")
		}
	}
	if req.ImageKey != "" && req.Image != nil {
		return models.Spec{}, problem(422, "invalid_image", "send the image or a key, not both", FieldProblem{Field: "image", Constraint: "oneOf", Message: "set exactly one of image.key and image.data"})
	}
	if req.ImageKey != "" {
		prefix := schemas.UploadPrefix + req.Tenant + "/"
		if !strings.HasPrefix(req.ImageKey, prefix) || strings.Contains(req.ImageKey, "..") {
			return models.Spec{}, problem(422, "invalid_image", "an image key must name an object under "+prefix+" (POST /v1/uploads returns one)",
				FieldProblem{Field: "image.key", Constraint: "pattern", Message: "must start with " + prefix})
		}
	}
	if p := checkStyle(req, spec); p != nil {
		return models.Spec{}, p
	}
	return spec, nil
}

// checkStyle applies the style-image rules: a model with a style input needs exactly
// one style image (data or an uploaded key under the caller's tenant); every other
// model takes none.
func checkStyle(req *SubmitRequest, spec models.Spec) *Problem {
	if req.StyleField == "" {
		req.StyleField = "style"
	}
	sent := req.Style != nil || req.StyleKey != ""
	switch {
	case !spec.TakesStyle() && sent:
		return problem(422, "invalid_style", fmt.Sprintf("model %s takes no style image (its style is in its weights); leave style out or pick an arbitrary-style model (GET /v1/models: takes_style)", spec.ID()),
			FieldProblem{Field: req.StyleField, Constraint: "not", Message: "must be left out for this model"})
	case spec.TakesStyle() && !sent:
		return problem(422, "missing_field", fmt.Sprintf("model %s repaints the image in the style of a second image: send it as the style part (multipart) or style.key / style.data (JSON)", spec.ID()),
			FieldProblem{Field: "style", Constraint: "required", Message: "required: a JPEG, PNG or WebP style image"})
	case req.Style != nil && req.StyleKey != "":
		return problem(422, "invalid_style", "send the style image or a key, not both", FieldProblem{Field: "style", Constraint: "oneOf", Message: "set exactly one of style.key and style.data"})
	case req.StyleKey != "":
		prefix := schemas.UploadPrefix + req.Tenant + "/"
		if !strings.HasPrefix(req.StyleKey, prefix) || strings.Contains(req.StyleKey, "..") {
			return problem(422, "invalid_style", "a style key must name an object under "+prefix+" (POST /v1/uploads returns one)",
				FieldProblem{Field: "style.key", Constraint: "pattern", Message: "must start with " + prefix})
		}
	}
	return nil
}

// validIdempotencyKey accepts 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// checkCallbackURL accepts absolute http(s) URLs without credentials whose host, when
// an IP literal, is no special-purpose address (unless AllowPrivateCallbacks); names
// are checked again at dial time (WebhookDialer).
func (s *Service) checkCallbackURL(raw string) *Problem {
	bad := func(msg string) *Problem {
		return problem(422, "invalid_callback_url", msg, FieldProblem{Field: "callback_url", Constraint: "format", Message: msg})
	}
	if s.cfg.WebhookSecret == "" || s.index == nil {
		return problem(422, "webhooks_disabled", "this server sends no webhooks (no webhook secret is configured); poll or watch the job instead",
			FieldProblem{Field: "callback_url", Constraint: "disabled", Message: "webhooks are off on this server"})
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || len(raw) > 2048:
		return bad("must be an absolute http or https URL of at most 2048 characters")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("must use http or https")
	case u.Host == "":
		return bad("must name a host")
	case u.User != nil:
		return bad("must not carry credentials; verify the Studio-Signature header instead")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !s.cfg.AllowPrivateCallbacks {
		if err := CheckCallbackAddr(ip); err != nil {
			msg := "must reach a public address: " + strings.TrimPrefix(err.Error(), ErrSpecialAddress.Error()+": ")
			return problem(422, "invalid_callback_url", msg, FieldProblem{Field: "callback_url", Constraint: "publicAddress", Message: msg})
		}
	}
	return nil
}

// readUpload fetches an image a request referenced by key, bounded by the size limit.
func (s *Service) readUpload(ctx context.Context, req *SubmitRequest) ([]byte, error) {
	return s.readUploadKey(ctx, req.ImageKey, req.ImageField)
}

// readUploadKey fetches the uploaded object key for the request field field, bounded
// by the size limit.
func (s *Service) readUploadKey(ctx context.Context, key, field string) ([]byte, error) {
	rc, info, err := s.blobs.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, problem(422, "missing_object", "no object "+key+": upload it first (POST /v1/uploads)", FieldProblem{Field: field, Constraint: "exists", Message: "no such object"})
	}
	if err != nil {
		return nil, fmt.Errorf("read upload %s: %w", key, err)
	}
	defer rc.Close()
	if info.Size > s.cfg.Limits.MaxBytes {
		return nil, problem(413, "image_too_large", fmt.Sprintf("the object is %d bytes, larger than the %d byte limit", info.Size, s.cfg.Limits.MaxBytes), FieldProblem{Field: field, Constraint: "maxBytes", Message: "over the size limit"})
	}
	data, err := io.ReadAll(io.LimitReader(rc, s.cfg.Limits.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read upload %s: %w", key, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// cached completes rec from the result cache when an identical job already ran and
// its results still exist. Cache trouble is never fatal: the job then runs normally.
// A non-nil error is only returned from creating the record (ErrJobExists).
func (s *Service) cached(ctx context.Context, rec *schemas.JobRecord) (*schemas.JobRecord, bool, error) {
	if s.cache == nil {
		return nil, false, nil
	}
	input := rec.Input.SHA256
	if rec.Style != nil {
		input += "+" + rec.Style.SHA256 // another style image is another picture
	}
	key := jobs.CacheKey(rec.Tenant, input, rec.Task, rec.Model, rec.ModelVersion, rec.Params)
	ce, ok, err := s.cache.Get(ctx, key)
	if err != nil || !ok {
		return nil, false, nil
	}
	for _, ref := range ce.Results {
		if _, err := s.blobs.Stat(ctx, ref.Key); err != nil {
			_ = s.cache.Delete(ctx, key) // erased or expired results: recompute
			return nil, false, nil
		}
	}
	now := time.Now().UTC()
	rec.Status, rec.Stage, rec.Percent = schemas.StatusSucceeded, schemas.StageStore, 100
	rec.CacheHit, rec.Results = true, ce.Results
	rec.StartedAt, rec.FinishedAt = now, now
	if err := s.jobs.Create(ctx, rec); err != nil {
		if errors.Is(err, jobs.ErrExists) {
			return nil, false, err
		}
		return nil, false, nil
	}
	s.publishResult(ctx, rec)
	s.log.WithFields(logrus.Fields{"job_id": rec.ID, "trace_id": rec.TraceID, "tenant": rec.Tenant, "user_id": rec.User, "cached_from": ce.JobID, "stage": "ingest"}).Info("job served from the result cache")
	return rec, true, nil
}

// publishResult announces a job that ended at ingest (cache hit, cancellation).
func (s *Service) publishResult(ctx context.Context, rec *schemas.JobRecord) {
	res := schemas.ResultFromRecord(rec, "")
	data, err := json.Marshal(res)
	if err != nil {
		return
	}
	if err := s.pub.Publish(ctx, streams.Output{Subject: schemas.ResultSubject(rec.Tenant, rec.Task), MsgID: rec.ID + ":result", Data: data}); err != nil {
		s.log.WithError(err).WithField("job_id", rec.ID).Warn("could not publish the result event")
	}
}

// NewJobID returns a time-ordered, URL- and subject-safe id.
func NewJobID() string {
	idMu.Lock()
	defer idMu.Unlock()
	return strings.ToLower(ulid.MustNew(ulid.Now(), idEntropy).String())
}

// Monotonic entropy keeps ids from one process increasing within a millisecond, so
// listing by id is listing by submission; it is not safe for concurrent use, hence idMu.
var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

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
func imageProblem(err error, field string) *Problem {
	if field == "" {
		field = "image"
	}
	fp := func(constraint, msg string) FieldProblem {
		return FieldProblem{Field: field, Constraint: constraint, Message: msg}
	}
	switch {
	case errors.Is(err, imageio.ErrEmpty):
		return problem(400, "empty_image", err.Error(), fp("minLength", "the file is empty"))
	case errors.Is(err, imageio.ErrUnsupportedFormat):
		return problem(415, "unsupported_format", err.Error(), fp("format", "send JPEG, PNG or WebP"))
	case errors.Is(err, imageio.ErrNotImage):
		return problem(415, "not_an_image", err.Error(), fp("format", "the content is not an image"))
	case errors.Is(err, imageio.ErrTooLarge):
		return problem(413, "image_too_large", err.Error(), fp("maxPixels", "over the size limit"))
	case errors.Is(err, imageio.ErrCorrupt):
		return problem(422, "corrupt_image", err.Error(), fp("format", "the file is damaged"))
	}
	return problem(422, "invalid_image", err.Error(), fp("format", "cannot be read"))
}
