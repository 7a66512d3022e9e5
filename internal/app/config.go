// Package app wires the parts of the service into runnable processes: the embedded or
// external NATS connection, object storage, the model catalog, each pipeline stage and
// ingest. cmd/studio only parses flags and calls in here, and the end-to-end tests start
// the same wiring.
package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob/s3"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
)

// Config is every setting of a studio process. Each flag can also come from the
// environment variable named in its help text (STUDIO_ + upper-case flag name with
// dashes as underscores); a flag on the command line wins.
type Config struct {
	DataDir string

	NATSURL     string
	NATSCreds   string
	NATSListen  string
	NATSMonitor string
	Replicas    int
	// StreamMaxBytes bounds every stream (0: the streams.Default*MaxBytes bounds).
	StreamMaxBytes int64
	HTTPListen     string
	// HTTPTimeouts bound each HTTP connection of the API (zero fields: the defaults).
	HTTPTimeouts HTTPTimeouts
	PublicURL    string
	// CORSOrigins, UploadSecret, WebhookSecret and WebhookAllowPrivate configure ingest
	// (see ingest.Config).
	CORSOrigins         string
	UploadSecret        string
	WebhookSecret       string
	WebhookPrevSecret   string
	WebhookAllowPrivate bool
	// OpsCacheTTL is how long the operations dashboard's business report is served from
	// memory (0: the default, 60 s; negative: no caching).
	OpsCacheTTL time.Duration
	// Rollouts configures the rollout controller and its alerts (rollouts.go).
	Rollouts RolloutConfig
	S3       s3.Config
	// Sink is the ClickHouse writer, run by `studio sink` and inside `studio up`.
	Sink sink.Config
	// Analytics selects the engine `studio up` writes analytics to: AnalyticsAuto (the
	// flag's default), AnalyticsEmbedded, AnalyticsClickHouse or AnalyticsOff. The zero
	// value runs the sink exactly when Sink.Addr is set.
	Analytics    string
	CacheDir     string
	ORTLib       string
	Device       string
	Threads      int
	ORTSpin      bool
	Sessions     int
	TileBatch    int
	Models       string
	ModelDir     string
	Concurrency  int
	MaxUpload    int64
	MaxPixels    int64
	MaxOutPixels int64
	// AuditAnonPerSource and AuditAnonTotal sample unauthenticated failures in the audit
	// log, per source address and in all, per minute (auth.SampledAuditor).
	AuditAnonPerSource int
	AuditAnonTotal     int
	// UploadTTL, WorkTTL and RetentionInterval drive the retention sweeper
	// (erasure.Retention); a negative interval turns it off.
	UploadTTL, WorkTTL, RetentionInterval time.Duration
	// UploadQuota and UploadQuotaBytes bound one user's stored presigned uploads.
	UploadQuota      int
	UploadQuotaBytes int64
	// MaxJPEGScans bounds the scans of an uploaded JPEG (its decoding work is pixels ×
	// scans); 0 is imageio.DefaultMaxScans.
	MaxJPEGScans int
	// StageDeadline, when positive, replaces every stage's per-image Deadline of the
	// stage table (processors.Stage.Deadline).
	StageDeadline time.Duration
	DrainTimeout  time.Duration
	AckWait       time.Duration
	// StartupWait bounds how long a starting process waits for JetStream (a meta
	// leader) and for its streams and buckets to be provisioned.
	StartupWait time.Duration
	// JobDeadline fails a job still not final this long after its submission (ingest
	// enforces it; 0 disables).
	JobDeadline  time.Duration
	Stages       string
	LogLevel     string
	LogSample    int
	OTLPEndpoint string
	Worker       string
	// TelemetryBatchRows and TelemetryBatchWait bound a batch of stage telemetry: it is
	// published once it holds that many rows or that long after its first row. Rows 0
	// publishes one message per stage run, as before batching.
	TelemetryBatchRows int
	TelemetryBatchWait time.Duration
	// Auth is "on" or "off"; the zero value is off (tests and embedders opt in), the
	// --auth flag defaults to on. Off, every HTTP caller is tenant and user "local".
	Auth string
	// AuthDev lets POST /v1/auth/login issue tokens for any existing user (development).
	AuthDev bool
	// NATSAccounts maps NATS accounts to tenants ("TENANT_ACME=acme,..."): a NATS
	// submission from such an account is a job of the sending NATS user
	// (ingest.ParseNATSAccounts).
	NATSAccounts string
	// OperatorTenant is the tenant whose admins may use the routes that span every
	// tenant: the operations analytics (/ops/api/*, `studio sql`) and rollouts; empty:
	// ingest's default tenant, "local".
	OperatorTenant string
	// JWT configures token signing and lifetimes; Quota the per-tier limits.
	JWT   auth.Config
	Quota quota.Policy
	// StorageQuota is the per-tenant storage quota (--storage-quota,
	// --storage-quota-tenants), enforced while --auth is on.
	StorageQuota quota.StorageLimits
}

// AuthOn reports whether the HTTP API requires credentials.
func (c *Config) AuthOn() bool { return c.Auth == "on" }

// RegisterFlags adds the settings to fs with defaults taken from the environment.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	str := func(p *string, name, def, help string) {
		fs.StringVar(p, name, env(name, def), help+" ["+envName(name)+"]")
	}
	integer := func(p *int, name string, def int, help string) {
		fs.IntVar(p, name, envInt(name, def), help+" ["+envName(name)+"]")
	}
	str(&c.DataDir, "data-dir", defaultDataDir(), "directory for the embedded JetStream store")
	str(&c.NATSURL, "nats-url", "", "external NATS server(s), comma separated; empty runs an embedded server")
	str(&c.NATSCreds, "nats-creds", "", "NATS credentials file for --nats-url")
	str(&c.NATSListen, "nats-listen", "127.0.0.1:4222", "where the embedded NATS server accepts other processes; empty for in-process only")
	str(&c.NATSMonitor, "nats-monitor", "127.0.0.1:8222", "embedded NATS monitoring endpoint (KEDA reads lag here); empty disables")
	integer(&c.Replicas, "replicas", 1, "stream replicas (3 on a NATS cluster)")
	fs.Int64Var(&c.StreamMaxBytes, "stream-max-bytes", envInt64("stream-max-bytes", 0), "bound in bytes of every stream; full pipeline streams refuse new jobs (503 queue_full), the others drop their oldest messages; 0 keeps the defaults (256 MiB each, feedback 64 MiB: 2.06 GiB of disk at most) ["+envName("stream-max-bytes")+"]")
	str(&c.HTTPListen, "http", "127.0.0.1:8080", "HTTP API listen address")
	dur := func(p *time.Duration, name string, def time.Duration, help string) {
		fs.DurationVar(p, name, envDuration(name, def), help+" ["+envName(name)+"]")
	}
	ht := DefaultHTTPTimeouts()
	dur(&c.HTTPTimeouts.ReadHeader, "http-read-header-timeout", ht.ReadHeader, "time a client has to send its request headers")
	dur(&c.HTTPTimeouts.Read, "http-read-timeout", ht.Read, "time a client has to send a whole request, body included (the default fits --max-upload-bytes of 10 MB at 40 KB/s)")
	dur(&c.HTTPTimeouts.Write, "http-write-timeout", ht.Write, "time to send an answer after the request headers; above POST /v2/predict's 60 s wait plus a download; WebSocket and SSE event streams are exempt")
	dur(&c.HTTPTimeouts.Idle, "http-idle-timeout", ht.Idle, "how long a keep-alive connection may wait for its next request")
	dur(&c.OpsCacheTTL, "ops-cache-ttl", 60*time.Second, "how long the operations dashboard's business report is served from memory, so analytics see one query per window per period; negative: no caching")
	str(&c.Rollouts.Webhook, "rollout-webhook", "", "URL that receives a JSON POST (studio.rollout.transition/v1) for every rollout transition: the alert hook; empty sends none")
	dur(&c.Rollouts.Interval, "rollout-interval", 2*time.Second, "how often the rollout controller judges running rollouts")
	str(&c.PublicURL, "public-url", "", "URL printed for people to open (default http://<http address>)")
	str(&c.CORSOrigins, "cors-origins", "", "browser origins allowed to call the API, comma separated (* for any); empty sends no CORS headers")
	str(&c.UploadSecret, "upload-secret", "", "key that signs presigned upload URLs; every ingest replica needs the same one (empty: random per process)")
	str(&c.WebhookSecret, "webhook-secret", "", "key each tenant's webhook signing secret is derived from (Studio-Signature); empty refuses callback_url")
	str(&c.WebhookPrevSecret, "webhook-previous-secret", "", "the webhook secret being rotated out: deliveries carry a second signature under it until it is removed")
	fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", envBool("webhook-allow-private", false), "let callback URLs reach loopback, private and other special-purpose addresses (development only) ["+envName("webhook-allow-private")+"]")
	str(&c.S3.Endpoint, "s3-endpoint", "", "S3 endpoint host:port; empty stores objects in the JetStream object store")
	str(&c.S3.Bucket, "s3-bucket", "studio", "S3 bucket")
	str(&c.S3.AccessKey, "s3-access-key", "", "S3 access key")
	str(&c.S3.SecretKey, "s3-secret-key", "", "S3 secret key")
	str(&c.S3.Region, "s3-region", "", "S3 region")
	dur(&c.S3.RetryFor, "s3-retry-for", s3.DefaultRetryFor, "how long an S3 call that fails because the server is unavailable (connection refused or reset, timeout, HTTP 5xx, 503 SlowDown) is retried, with backoff, before the stage gives the message back for redelivery; 0 does not retry")
	fs.BoolVar(&c.S3.UseTLS, "s3-tls", envBool("s3-tls", false), "use HTTPS for S3 ["+envName("s3-tls")+"]")
	c.Sink.RegisterFlags(fs)
	str(&c.Analytics, "analytics", AnalyticsAuto, "analytics engine of `studio up`: auto (the server of --clickhouse-addr if set, else embedded), embedded (chDB, the in-process ClickHouse, under <data-dir>/analytics), clickhouse or off")
	str(&c.CacheDir, "cache-dir", assets.DefaultDir(), "where fetched models and the ONNX Runtime library are cached")
	str(&c.ORTLib, "ort-lib", "", "ONNX Runtime shared library; empty uses the fetched CPU build")
	str(&c.Device, "device", "auto", "inference device: auto, cpu or cuda")
	integer(&c.Threads, "threads", 0, "ONNX Runtime intra-op threads per session; 0 uses every core")
	fs.BoolVar(&c.ORTSpin, "ort-spin", envBool("ort-spin", false), "let idle ONNX Runtime threads spin (lower latency on a dedicated machine, wasted CPU on a shared one) ["+envName("ort-spin")+"]")
	integer(&c.Sessions, "sessions", 1, "sessions per model version (parallel runs of batch-1 models)")
	integer(&c.TileBatch, "tile-batch", 0, "tiles of one image per model call, for tiled models with a dynamic batch dimension (Real-ESRGAN); 0: 1 on the CPU, 4 on a GPU")
	str(&c.Models, "models", "isnet@small,realesrgan@general-x4v3,ppocr@v4", "shipped model versions to serve, comma separated ('studio models list' shows them)")
	str(&c.ModelDir, "model-dir", "", "folder of your own model manifests (*.yaml); every model in it is served")
	integer(&c.Concurrency, "concurrency", 2, "messages handled at once per stage (inference: per model)")
	fs.Int64Var(&c.MaxUpload, "max-upload-bytes", envInt64("max-upload-bytes", imageio.DefaultMaxBytes), "largest accepted upload ["+envName("max-upload-bytes")+"]")
	fs.Int64Var(&c.MaxPixels, "max-pixels", envInt64("max-pixels", imageio.DefaultMaxPixels), "largest accepted width x height ["+envName("max-pixels")+"]")
	fs.Int64Var(&c.MaxOutPixels, "max-output-pixels", envInt64("max-output-pixels", 16<<20), "largest image an image-to-image model may produce (upscale x4 of 1024x1024 = 16 MP) ["+envName("max-output-pixels")+"]")
	integer(&c.AuditAnonPerSource, "audit-anon-per-source", auth.DefaultAnonPerSource, "unauthenticated failures of one source address stored in the audit log per minute; the rest are counted (studio_audit_sampled_out_total)")
	integer(&c.AuditAnonTotal, "audit-anon-total", auth.DefaultAnonTotal, "unauthenticated failures of all sources stored in the audit log per minute; the rest are counted")
	fs.DurationVar(&c.UploadTTL, "upload-ttl", envDuration("upload-ttl", erasure.DefaultUploadTTL), "presigned uploads older than this are deleted, used or not (a job copies what it uses) ["+envName("upload-ttl")+"]")
	fs.DurationVar(&c.WorkTTL, "work-ttl", envDuration("work-ttl", erasure.DefaultWorkTTL), "intermediate artifacts of finished or forgotten jobs older than this are deleted ["+envName("work-ttl")+"]")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", envDuration("retention-interval", erasure.DefaultSweepInterval), "how often one ingest replica deletes expired uploads and the objects of expired jobs; negative turns it off ["+envName("retention-interval")+"]")
	integer(&c.UploadQuota, "upload-quota", ingest.DefaultUploadQuota, "presigned uploads one user may have stored at once (until used and expired); more answer 429 upload_quota_exceeded")
	fs.Int64Var(&c.UploadQuotaBytes, "upload-quota-bytes", envInt64("upload-quota-bytes", ingest.DefaultUploadQuotaBytes), "bytes of presigned uploads one user may have stored at once ["+envName("upload-quota-bytes")+"]")
	integer(&c.MaxJPEGScans, "max-jpeg-scans", imageio.DefaultMaxScans, "most scans (progressive passes) an uploaded JPEG may have; decoding work is pixels x scans, so more is refused (413 image_too_large)")
	fs.DurationVar(&c.StageDeadline, "stage-deadline", envDuration("stage-deadline", 0), "per-image run bound of every stage; past it the job fails with stage_deadline_exceeded, not retried; 0 keeps each stage's own (preprocess 1m, inference 5m, postprocess 1m, store 45s) ["+envName("stage-deadline")+"]")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", envDuration("drain-timeout", 25*time.Second), "how long in-flight work may finish on shutdown ["+envName("drain-timeout")+"]")
	fs.DurationVar(&c.AckWait, "ack-wait", envDuration("ack-wait", 0), "redeliver a message this long after its worker stopped reporting progress; 0 keeps each stage's default ["+envName("ack-wait")+"]")
	fs.DurationVar(&c.StartupWait, "startup-wait", envDuration("startup-wait", 2*time.Minute), "how long a starting process waits for JetStream to elect its leaders and for provisioning to finish, retrying, before it gives up ["+envName("startup-wait")+"]")
	fs.DurationVar(&c.JobDeadline, "job-deadline", envDuration("job-deadline", processors.DefaultJobDeadline()), "fail a job with code deadline_exceeded when it is not finished this long after submission; the default covers every retry of every stage; 0 disables ["+envName("job-deadline")+"]")
	str(&c.Stages, "stages", "ingest,preprocess,inference,postprocess,store", "parts `studio up` runs in-process; leave some out to run them as `studio worker` processes")
	str(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	integer(&c.LogSample, "log-sample", 1, "write 1 in N routine success lines (\"stage done\", \"http request\" below 400); warnings and errors always; 1 writes all")
	str(&c.OTLPEndpoint, "otlp-endpoint", "", "OpenTelemetry collector for one trace span per stage run, as http://host:4318 or host:port (HTTPS); empty disables tracing")
	str(&c.Worker, "worker-id", defaultWorker(), "this process's name in logs and telemetry")
	integer(&c.TelemetryBatchRows, "telemetry-batch-rows", telemetry.DefaultMaxRows, "stage runs per telemetry message (studio.telemetry.batch); 0 publishes one message per stage run on studio.telemetry.<stage>")
	fs.DurationVar(&c.TelemetryBatchWait, "telemetry-batch-wait", envDuration("telemetry-batch-wait", telemetry.DefaultMaxWait), "longest a stage run waits for its telemetry batch to fill before it is published ["+envName("telemetry-batch-wait")+"]")
	str(&c.Auth, "auth", "on", "on: every API call needs a bearer token or API key; off: no authentication, every caller is tenant \"local\" (development only)")
	fs.BoolVar(&c.AuthDev, "auth-dev", envBool("auth-dev", false), "let POST /v1/auth/login issue tokens for any existing user without an admin credential (development only) ["+envName("auth-dev")+"]")
	str(&c.OperatorTenant, "operator-tenant", "local", "tenant whose admins operate the service: only they may query the operations analytics (/ops/api/*, studio sql) and run rollouts, which span every tenant")
	str(&c.NATSAccounts, "nats-accounts", "", "NATS accounts whose users submit jobs as themselves, ACCOUNT=tenant, comma separated (the account imports studio.submit.> with share: true; see deploy/nats/nats-server.conf)")
	c.JWT.RegisterFlags(fs)
	c.Quota.RegisterFlags(fs)
	c.StorageQuota.RegisterFlags(fs)
}

// Validate checks the settings and says which flag to fix.
func (c *Config) Validate() error {
	var errs []error
	if err := checkAnalytics(c.Analytics); err != nil {
		errs = append(errs, err)
	}
	if c.NATSURL == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required for the embedded NATS server"))
	}
	if _, err := ingest.ParseNATSAccounts(c.NATSAccounts); err != nil {
		errs = append(errs, err)
	}
	if err := schemas.ValidToken(c.OperatorTenant); c.OperatorTenant != "" && err != nil {
		errs = append(errs, fmt.Errorf("--operator-tenant: %w", err))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: use 1 to 5", c.Replicas))
	}
	if c.TileBatch < 0 || c.TileBatch > 64 { // 0: the inference stage default
		errs = append(errs, fmt.Errorf("--tile-batch %d: use 1 to 64 tiles per call", c.TileBatch))
	}
	switch c.Device {
	case "auto", "cpu", "cuda":
	default:
		errs = append(errs, fmt.Errorf("--device %q: use auto, cpu or cuda", c.Device))
	}
	if c.S3.Endpoint != "" {
		if err := c.S3.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Sink.Enabled() {
		if err := c.Sink.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: must be at least 1", c.Concurrency))
	}
	if _, err := c.UpStages(); err != nil {
		errs = append(errs, err)
	}
	if c.LogSample < 0 {
		errs = append(errs, fmt.Errorf("--log-sample %d: use 1 to log every success line, or N to log 1 in N", c.LogSample))
	}
	if c.AckWait != 0 && c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--ack-wait %s: use at least 1s", c.AckWait))
	}
	if _, err := c.ModelIDs(); err != nil {
		errs = append(errs, err)
	}
	switch c.Auth {
	case "", "off":
	case "on":
		if c.JWT.AccessTTL == 0 {
			c.JWT.AccessTTL = auth.DefaultAccessTTL
		}
		if c.JWT.RefreshTTL == 0 {
			c.JWT.RefreshTTL = auth.DefaultRefreshTTL
		}
		if err := c.JWT.Validate(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("--auth %q: use on or off", c.Auth))
	}
	if err := c.Quota.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.StorageQuota.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ModelIDs parses --models into name/version pairs.
func (c *Config) ModelIDs() ([][2]string, error) {
	var out [][2]string
	for _, id := range strings.Split(c.Models, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			continue
		}
		name, version, ok := strings.Cut(id, "@")
		if !ok || name == "" || version == "" {
			return nil, fmt.Errorf("--models: %q is not name@version (e.g. isnet@small)", id)
		}
		out = append(out, [2]string{name, version})
	}
	if len(out) == 0 {
		return nil, errors.New("--models: name at least one model (e.g. isnet@small)")
	}
	return out, nil
}

// UpStages parses --stages.
func (c *Config) UpStages() (map[string]bool, error) {
	out := map[string]bool{}
	for _, s := range strings.Split(c.Stages, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, err := processors.Lookup(schemas.Stage(s)); s != "ingest" && err != nil {
			parts := []string{"ingest"}
			for _, st := range processors.StageNames() {
				parts = append(parts, string(st))
			}
			return nil, fmt.Errorf("--stages: unknown part %q (want %s)", s, strings.Join(parts, ", "))
		}
		out[s] = true
	}
	return out, nil
}

// Limits returns the upload limits.
func (c *Config) Limits() imageio.Limits {
	return imageio.Limits{MaxBytes: c.MaxUpload, MaxPixels: c.MaxPixels, MaxScans: c.MaxJPEGScans}
}

func envName(flag string) string {
	return "STUDIO_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func env(flag, def string) string {
	if v, ok := os.LookupEnv(envName(flag)); ok {
		return v
	}
	return def
}

func envInt(flag string, def int) int {
	if v, err := strconv.Atoi(env(flag, "")); err == nil {
		return v
	}
	return def
}

func envInt64(flag string, def int64) int64 {
	if v, err := strconv.ParseInt(env(flag, ""), 10, 64); err == nil {
		return v
	}
	return def
}

func envBool(flag string, def bool) bool {
	if v, err := strconv.ParseBool(env(flag, "")); err == nil {
		return v
	}
	return def
}

func envDuration(flag string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(env(flag, "")); err == nil {
		return v
	}
	return def
}

func defaultDataDir() string {
	if d, err := os.UserHomeDir(); err == nil {
		return filepath.Join(d, ".local", "share", "studio")
	}
	return "studio-data"
}

func defaultWorker() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
