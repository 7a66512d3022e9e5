package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/ingest/studio"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/blob/s3"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/processors/store"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// Bus is a NATS connection with JetStream, plus the embedded server when there is one.
type Bus struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Embedded *streams.Embedded
}

// Close drains the connection and stops the embedded server.
func (b *Bus) Close() {
	if b.NC != nil {
		_ = b.NC.Drain()
		for b.NC.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
		b.NC.Close()
	}
	if b.Embedded != nil {
		b.Embedded.Shutdown()
	}
}

// Connect starts the embedded server (no --nats-url) or dials the external one, then
// provisions the topology, waiting (up to 2 minutes, logging what it waits for) while a
// cluster elects its leaders.
func Connect(ctx context.Context, cfg *Config, name string, log logrus.FieldLogger) (*Bus, error) {
	b := &Bus{}
	var err error
	if cfg.NATSURL == "" {
		b.Embedded, err = streams.StartEmbedded(streams.EmbeddedConfig{DataDir: cfg.DataDir, Listen: cfg.NATSListen, HTTPListen: cfg.NATSMonitor})
		if err != nil {
			return nil, err
		}
		b.NC, err = b.Embedded.Connect(name)
		if u := b.Embedded.ClientURL(); u != "" {
			log.WithField("nats_url", u).Info("embedded NATS server listening")
		}
	} else {
		b.NC, err = streams.Dial(cfg.NATSURL, name, cfg.NATSCreds)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	b.JS, err = jetstream.New(b.NC)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// Every process provisions at start; on a cluster started at the same moment it
	// first waits for a meta leader, and retries provisioning while streams elect theirs.
	wait := streams.Startup{Wait: cfg.StartupWait, Log: log.WithField("component", "startup")}
	top := streams.DefaultTopology(cfg.Replicas).WithMaxBytes(cfg.StreamMaxBytes)
	if err := wait.AwaitJetStream(ctx, b.JS); err != nil {
		b.Close()
		return nil, err
	}
	wait.Attempt = 15 * time.Second // tries resume where the last one stopped (idempotent)
	if err := wait.Do(ctx, "provision the topology", func(ctx context.Context) error {
		return topology.Provision(ctx, b.JS, top)
	}); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// OpenBlobs returns the S3 store when --s3-endpoint is set, else the JetStream object
// store.
func OpenBlobs(ctx context.Context, cfg *Config, bus *Bus, log logrus.FieldLogger) (blob.Store, error) {
	if cfg.S3.Endpoint == "" {
		return natsobj.Open(ctx, bus.JS, natsobj.Bucket)
	}
	st, err := s3.New(ctx, cfg.S3)
	if err != nil {
		return nil, err
	}
	if err := st.SetWorkExpiry(ctx, "work/", 1); err != nil {
		log.WithError(err).Warn("could not install the 1-day expiry rule for work/ objects; scratch objects of crashed jobs will stay")
	}
	return st, nil
}

// Manifests returns the shipped manifests and the operator's (--model-dir), checked
// together; enabled marks those this process serves.
func Manifests(cfg *Config) (all []models.Manifest, enabled map[string]bool, err error) {
	all, err = models.Shipped()
	if err != nil {
		return nil, nil, err
	}
	enabled = map[string]bool{}
	if cfg.ModelDir != "" {
		own, err := models.LoadManifests(os.DirFS(cfg.ModelDir), cfg.ModelDir)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range own {
			enabled[m.ID()] = true
		}
		all = append(all, own...)
	}
	if err := models.CheckSet(all); err != nil {
		return nil, nil, err
	}
	ids, err := cfg.ModelIDs()
	if err != nil {
		return nil, nil, err
	}
	known := map[string]bool{}
	for _, m := range all {
		known[m.ID()] = true
	}
	for _, id := range ids {
		key := id[0] + "@" + id[1]
		if !known[key] {
			return nil, nil, fmt.Errorf("--models: unknown model %s (`studio models list` shows the known ones)", key)
		}
		enabled[key] = true
	}
	return all, enabled, nil
}

// Catalog fetches (or finds cached) the enabled models and returns the catalog.
func Catalog(ctx context.Context, cfg *Config, log logrus.FieldLogger) (*models.Catalog, error) {
	all, enabled, err := Manifests(cfg)
	if err != nil {
		return nil, err
	}
	cache := &assets.Cache{Dir: cfg.CacheDir, Log: log}
	cat := models.NewCatalog()
	for _, m := range all {
		if !enabled[m.ID()] {
			continue
		}
		spec, err := models.Fetch(ctx, cache, m)
		if err != nil {
			return nil, err
		}
		if cfg.Device == "cuda" {
			// Only a node that will run on the GPU fetches a manifest's GPU variant.
			if spec, err = models.FetchVariant(ctx, cache, spec, cfg.Device); err != nil {
				return nil, err
			}
		}
		if err := cat.Add(spec); err != nil {
			return nil, err
		}
	}
	return cat, nil
}

// Backend loads ONNX Runtime: --ort-lib when set, else the fetched CUDA build for
// --device cuda (`studio fetch runtime --gpu`) and the fetched CPU build otherwise. When
// --device auto settles on the CPU it logs why.
func Backend(ctx context.Context, cfg *Config, log logrus.FieldLogger) (inference.Backend, error) {
	lib := cfg.ORTLib
	if lib == "" {
		runtime := []assets.Asset{assets.ONNXRuntimeCPU}
		if cfg.Device == "cuda" {
			runtime = assets.RuntimeGPU
		}
		cache := &assets.Cache{Dir: cfg.CacheDir, Log: log}
		for i, a := range runtime {
			p, err := cache.Ensure(ctx, a)
			if err != nil {
				return nil, err
			}
			if i == 0 {
				lib = p
			}
		}
	}
	b, err := ort.New(ort.Config{LibraryPath: lib, Device: cfg.Device, IntraOpThreads: cfg.Threads, Spin: cfg.ORTSpin})
	if err != nil {
		return nil, err
	}
	if why := b.Fallback(); why != nil {
		log.WithError(why).WithField("ort_lib", lib).Warn("--device auto: CUDA unavailable; running inference on CPU")
	}
	log.WithField("device", b.Device()).Info("inference device selected")
	return b, nil
}

// The metrics observe each layer through the interface that layer declares: the consume
// engine (streams.Observer, below), stage runs and finished jobs (processors.Observer)
// and model work (inference.Observer).
var (
	_ processors.Observer             = (*metrics.Metrics)(nil)
	_ processors.TelemetryLossCounter = (*metrics.Metrics)(nil)
	_ inference.Observer              = (*metrics.Metrics)(nil)
)

// Stage is a runnable pipeline stage.
type Stage struct {
	Name schemas.Stage
	// Config is what the runner was built with: the stage's row of processors.Stages,
	// overridden by the flags that are set.
	Config streams.RunnerConfig
	Runner *streams.Runner
	closer func() error
}

// Deps are what stages and ingest share.
type Deps struct {
	Bus     *Bus
	Blobs   blob.Store
	Catalog *models.Catalog
	Backend inference.Backend // only for inference
	Log     logrus.FieldLogger
	// Loaded, when set, receives a function listing the models the in-process
	// inference stage has loaded (for GET /v1/models).
	Loaded *func() []string
	// Metrics, when set, receives the stages' metrics and spans (see NewMetrics).
	Metrics *metrics.Metrics
}

// newStep builds the Step of one stage from the shared deps; closer, when not nil, runs
// once the stage's runners have stopped.
type newStep func(ctx context.Context, cfg *Config, d Deps, log logrus.FieldLogger) (step processors.Step, closer func() error, err error)

// steps holds the constructor of each row of processors.Stages (the Step packages
// import processors, so the table cannot name them itself); TestEveryStageHasAStep
// keeps the two in step.
var steps = map[schemas.Stage]newStep{
	schemas.StagePreprocess: func(_ context.Context, cfg *Config, d Deps, _ logrus.FieldLogger) (processors.Step, func() error, error) {
		return &preprocess.Step{Blobs: d.Blobs, Catalog: d.Catalog, Limits: cfg.Limits(), MaxOutputPixels: cfg.MaxOutPixels}, nil, nil
	},
	schemas.StageInference: newInference,
	schemas.StagePostprocess: func(_ context.Context, cfg *Config, d Deps, _ logrus.FieldLogger) (processors.Step, func() error, error) {
		return &postprocess.Step{Blobs: d.Blobs, Catalog: d.Catalog, Limits: cfg.Limits()}, nil, nil
	},
	schemas.StageStore: func(ctx context.Context, _ *Config, d Deps, _ logrus.FieldLogger) (processors.Step, func() error, error) {
		cache, err := jobs.OpenCache(ctx, d.Bus.JS)
		if err != nil {
			return nil, nil, err
		}
		return &store.Step{Blobs: d.Blobs, Cache: cache}, nil, nil
	},
}

// newInference builds the inference step and loads each task's default model version
// now, so readiness means "can serve"; other versions load on first use.
func newInference(ctx context.Context, cfg *Config, d Deps, log logrus.FieldLogger) (processors.Step, func() error, error) {
	if d.Backend == nil {
		return nil, nil, errors.New("inference stage needs a backend")
	}
	step := &inference.Step{Blobs: d.Blobs, Catalog: d.Catalog, Backend: d.Backend, Config: inference.Config{SessionsPerModel: cfg.Sessions, TileBatch: cfg.TileBatch}, Log: log}
	if d.Bus != nil {
		store, err := jobs.Open(ctx, d.Bus.JS)
		if err != nil {
			return nil, nil, err
		}
		step.Progress = stepProgress(store, log)
	}
	if d.Metrics != nil {
		step.Observe = d.Metrics
	}
	for _, spec := range d.Catalog.All() {
		if !d.Catalog.IsDefault(spec) {
			continue
		}
		if err := step.Preload(spec); err != nil {
			return nil, nil, errors.Join(err, step.Close())
		}
	}
	if d.Loaded != nil {
		*d.Loaded = step.Loaded
	}
	return step, step.Close, nil
}

// runnerConfig sizes the runner of one consumer group from the stage's row; --ack-wait
// and --concurrency, when set, override the row. A per-model group gathers as many
// messages as the model's most batch-friendly version allows (manifest max_batch /
// max_wait_ms).
func runnerConfig(cfg *Config, row processors.Stage, model string, cat *models.Catalog) (streams.RunnerConfig, error) {
	spec, err := row.Consumers(model)
	if err != nil {
		return streams.RunnerConfig{}, err
	}
	if cfg.AckWait > 0 {
		spec.AckWait = cfg.AckWait
	}
	rc := streams.RunnerConfig{
		Stage: row.Name, Worker: cfg.Worker, Spec: spec, Concurrency: row.Concurrency,
		MaxBatch: 1, DrainTimeout: cfg.DrainTimeout,
	}
	if cfg.Concurrency > 0 {
		rc.Concurrency = cfg.Concurrency
	}
	if row.PerModel && cat != nil {
		for _, s := range cat.All() {
			if s.Name == model && s.MaxBatch > rc.MaxBatch {
				rc.MaxBatch = s.MaxBatch
				rc.MaxWait = max(rc.MaxWait, time.Duration(s.MaxWaitMS)*time.Millisecond)
			}
		}
	}
	return rc, nil
}

// NewStage builds the runners of one stage of processors.Stages: one, or for a
// per-model stage (inference) one per model name in the catalog.
func NewStage(ctx context.Context, cfg *Config, stage schemas.Stage, d Deps) ([]*Stage, error) {
	row, err := processors.Lookup(stage)
	if err != nil {
		return nil, err
	}
	build, ok := steps[stage]
	if !ok {
		return nil, fmt.Errorf("stage %s has no step constructor in internal/app", stage)
	}
	log := d.Log.WithField("stage", stage)
	pub := streams.JSPublisher{JS: d.Bus.JS}
	jobStore, err := jobs.Open(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	d.Metrics.InitStage(string(stage))
	if d.Catalog != nil {
		for _, spec := range d.Catalog.All() {
			d.Metrics.InitJobs(string(spec.Task), spec.Name, spec.Version)
		}
	}
	step, closer, err := build(ctx, cfg, d, log)
	if err != nil {
		return nil, err
	}
	runs, closer := stageRunBatcher(cfg, stage, pub, d.Metrics, log, closer)
	groups := []string{""}
	if row.PerModel {
		groups = d.Catalog.Names()
	}
	var out []*Stage
	for i, model := range groups {
		rc, err := runnerConfig(cfg, row, model, d.Catalog)
		if err != nil {
			return nil, closeOnError(err, closer)
		}
		h := processors.NewHandler(step, jobStore, pub, cfg.Worker, log)
		h.Deadline = cfg.StageDeadline
		if runs != nil {
			h.Runs = runs
		}
		if d.Metrics != nil {
			h.Observe = d.Metrics
		}
		// A job whose message fails for good is marked failed and its result published
		// before the message goes to the DLQ.
		rc.OnFailure, rc.Log = h.Fail, log
		rc.Observer = observer(d.Metrics)
		var sh streams.Handler = h
		if d.Metrics != nil {
			sh = processors.MeasureCPU(string(stage), d.Metrics.StageCPU)(h)
		}
		r, err := streams.NewRunner(ctx, d.Bus.NC, d.Bus.JS, sh, rc)
		if err != nil {
			return nil, closeOnError(err, closer)
		}
		s := &Stage{Name: stage, Config: rc, Runner: r}
		if i == 0 {
			s.closer = closer // the runners of a per-model stage share one step
		}
		out = append(out, s)
	}
	if len(out) == 0 && closer != nil {
		// A per-model stage with no model in the catalog has nothing to run.
		return nil, closer()
	}
	return out, nil
}

// stageRunBatcher returns the batcher of a stage's telemetry (nil when
// --telemetry-batch-rows is 0) and the stage's closer extended to flush it: the stages'
// closers run after their runners drained, so the last runs are published too.
func stageRunBatcher(cfg *Config, stage schemas.Stage, pub streams.Publisher, m *metrics.Metrics, log logrus.FieldLogger, closer func() error) (*telemetry.Batcher[schemas.StageRun], func() error) {
	if cfg.TelemetryBatchRows <= 0 {
		return nil, closer
	}
	runs := telemetry.New(telemetry.Config{
		Producer: cfg.Worker + "-" + string(stage), MaxRows: cfg.TelemetryBatchRows, MaxWait: cfg.TelemetryBatchWait,
		Lost: func(n int) {
			for range n {
				m.TelemetryLost(string(stage))
			}
		},
		Log: log,
	}, pub, telemetry.EncodeStageRuns)
	return runs, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := runs.Close(ctx)
		if closer != nil {
			err = errors.Join(err, closer())
		}
		return err
	}
}

func closeOnError(err error, closer func() error) error {
	if closer != nil {
		return errors.Join(err, closer())
	}
	return err
}

// RunStages runs stages until ctx is cancelled and all have drained.
func RunStages(ctx context.Context, stages []*Stage) error {
	var wg sync.WaitGroup
	errs := make([]error, len(stages))
	for i, s := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Runner.Run(ctx)
		}()
	}
	wg.Wait()
	for _, s := range stages {
		if s.closer != nil {
			errs = append(errs, s.closer())
		}
	}
	return errors.Join(errs...)
}

// NewIngest builds the ingest service.
func NewIngest(ctx context.Context, cfg *Config, d Deps, ready func(context.Context) error) (*ingest.Service, error) {
	jobStore, err := jobs.Open(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	// The backlog a new job waits behind is the first stage's, the one ingest feeds.
	spec, err := processors.Stages[0].Consumers("")
	if err != nil {
		return nil, err
	}
	depth := cachedDepth(func(ctx context.Context, tier schemas.Tier) (int, error) {
		return streams.Backlog(ctx, d.Bus.JS, spec, tier)
	}, backlogMaxAge)
	if ready == nil {
		ready = func(ctx context.Context) error { return BusReady(ctx, d.Bus) }
	}
	idem, err := jobs.OpenIdempotency(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	index, err := jobs.OpenIndex(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	var origins []string
	for _, o := range strings.Split(cfg.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			origins = append(origins, o)
		}
	}
	icfg := ingest.Config{
		Limits: cfg.Limits(), PublicURL: cfg.PublicURL, CORSOrigins: origins,
		UploadSecret: cfg.UploadSecret, UploadQuota: cfg.UploadQuota, UploadQuotaBytes: cfg.UploadQuotaBytes, WebhookSecret: cfg.WebhookSecret, WebhookPreviousSecret: cfg.WebhookPrevSecret, AllowPrivateCallbacks: cfg.WebhookAllowPrivate,
	}
	webhookSecrets, err := auth.OpenWebhookSecrets(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	opts := []ingest.Option{ingest.WithIdempotency(idem), ingest.WithJobIndex(index), ingest.WithWebhookSecrets(webhookSecrets)}
	rollouts, err := NewRolloutManager(ctx, cfg, d.Bus, d.Catalog, d.Log)
	if err != nil {
		return nil, err
	}
	if err := LoadRouting(ctx, d.Bus, d.Catalog); err != nil {
		return nil, err
	}
	opts = append(opts, ingest.WithRollouts(rollouts))
	if cfg.AuthOn() {
		sec, err := NewSecurity(ctx, cfg, d)
		if err != nil {
			return nil, err
		}
		opts = append(opts, ingest.WithSecurity(sec))
	}
	svc := ingest.NewService(icfg, jobStore, d.Blobs, streams.JSPublisher{JS: d.Bus.JS}, d.Catalog, depth, ready, d.Log.WithField("stage", "ingest"), opts...)
	pages := studio.Config{CacheDir: cfg.CacheDir, MaxUploadBytes: cfg.MaxUpload, BusinessTTL: cfg.OpsCacheTTL, Log: d.Log}
	if cfg.Sink.Enabled() {
		pages.Business = sink.BusinessSource(cfg.Sink)
		sinkCfg := cfg.Sink
		pages.SQL = func(ctx context.Context, q string) (*schemas.SQLResult, error) { return sink.SQL(ctx, sinkCfg, q) }
		// A kept report or SQL result may show a user erased since: every erasure
		// request, from any replica, drops them and holds them off until the sink
		// has applied it.
		pages.Caches = &studio.Caches{}
		go func() {
			if err := erasure.WatchRequests(ctx, d.Bus.JS, sink.AuditConsumer, pages.Caches.Hold, d.Log); err != nil {
				d.Log.WithError(err).Error("cannot watch erasure requests: cached analytics results may show erased users' rows for up to their TTL")
			}
		}()
	}
	if book, err := sink.Cookbook(); err == nil {
		for _, q := range book {
			pages.Cookbook = append(pages.Cookbook, schemas.SQLQuery{Name: q.Name, Title: q.Title, SQL: q.SQL})
		}
	}
	svc.MountPages(studio.Handler(pages), studio.Routes)
	if d.Loaded != nil {
		svc.ReportLoaded(func() []string {
			if *d.Loaded == nil {
				return nil
			}
			return (*d.Loaded)()
		})
	}
	cache, err := jobs.OpenCache(ctx, d.Bus.JS)
	if err != nil {
		return nil, err
	}
	svc.UseCache(cache)
	return svc, nil
}

// NewSecurity opens what authentication, isolation, fairness and audit need: the
// users, API keys, token and limit buckets, the signing keys (--jwt-keys, else
// <data-dir>/jwt-keys) and the eraser.
func NewSecurity(ctx context.Context, cfg *Config, d Deps) (*ingest.Security, error) {
	js := d.Bus.JS
	keys, err := cfg.JWT.KeySet(filepath.Join(cfg.DataDir, "jwt-keys"))
	if err != nil {
		return nil, err
	}
	users, err := auth.OpenUsers(ctx, js)
	if err != nil {
		return nil, err
	}
	tokens, err := auth.OpenTokens(ctx, js)
	if err != nil {
		return nil, err
	}
	issuer, err := auth.NewIssuer(keys, tokens, users, cfg.JWT.IssuerOptions()...)
	if err != nil {
		return nil, err
	}
	apiKeys, err := auth.OpenAPIKeys(ctx, js)
	if err != nil {
		return nil, err
	}
	limiter, err := quota.OpenRateLimiter(ctx, js)
	if err != nil {
		return nil, err
	}
	active, err := quota.OpenActiveJobs(ctx, js)
	if err != nil {
		return nil, err
	}
	eraser, err := erasure.NewEraser(ctx, js, d.Blobs)
	if err != nil {
		return nil, err
	}
	storage, err := quota.OpenStorage(ctx, js, d.Blobs, cfg.StorageQuota)
	if err != nil {
		return nil, err
	}
	var counter auth.AuditCounter
	if d.Metrics != nil {
		counter = d.Metrics
	}
	audit := auth.NewSampledAuditor(auth.NewAuditLog(streams.JSPublisher{JS: js}), cfg.AuditAnonPerSource, cfg.AuditAnonTotal, counter)
	natsAccounts, err := ingest.ParseNATSAccounts(cfg.NATSAccounts)
	if err != nil {
		return nil, err
	}
	return &ingest.Security{
		NATSAccounts: natsAccounts, OperatorTenant: cfg.OperatorTenant,
		Authenticator: &auth.Authenticator{Tokens: issuer, Keys: apiKeys, Audit: audit, Users: users},
		Issuer:        issuer, Users: users, Keys: apiKeys, Eraser: eraser, Limiter: limiter, Active: active,
		Audit: audit, Policy: cfg.Quota, DevLogin: cfg.AuthDev, Storage: storage,
	}, nil
}

// NewMetrics builds the metrics of one process ("up", "ingest", "worker-inference"),
// exporting a span per stage run when --otlp-endpoint is set. Call stop on exit: it
// flushes buffered spans (bounded to 5s).
func NewMetrics(ctx context.Context, cfg *Config, process string, log logrus.FieldLogger) (m *metrics.Metrics, stop func(), err error) {
	tp, shutdown, err := metrics.StartTracing(ctx, cfg.OTLPEndpoint, process, cfg.Worker)
	if err != nil {
		return nil, nil, err
	}
	if cfg.OTLPEndpoint != "" {
		log.WithField("otlp_endpoint", cfg.OTLPEndpoint).Info("exporting one trace span per stage run")
	}
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(sctx); err != nil {
			log.WithError(err).Warn("could not flush trace spans to the OTLP endpoint")
		}
	}
	return metrics.New(metrics.WithTracerProvider(tp)), stop, nil
}

// BlobBackend names the storage backend in studio_blob_op_seconds.
func BlobBackend(cfg *Config) string {
	if cfg.S3.Endpoint == "" {
		return "jetstream"
	}
	return "s3"
}

// QueueSource reads the backlog of every tier consumer of the given stages (nil: every
// stage of processors.Stages; for a per-model stage, one consumer group per model in
// the catalog) for metrics.PollQueues. Consumers no worker has created yet are left out.
func QueueSource(bus *Bus, stages []schemas.Stage, cat *models.Catalog) metrics.QueueSource {
	if stages == nil {
		stages = processors.StageNames()
	}
	type group struct {
		stage schemas.Stage
		spec  streams.ConsumerSpec
	}
	var groups []group
	for _, st := range stages {
		row, err := processors.Lookup(st)
		if err != nil {
			continue
		}
		names := []string{""}
		if row.PerModel {
			names = cat.Names()
		}
		for _, name := range names {
			if spec, err := row.Consumers(name); err == nil {
				groups = append(groups, group{st, spec})
			}
		}
	}
	return func(ctx context.Context) ([]metrics.QueueSample, error) {
		var out []metrics.QueueSample
		for _, g := range groups {
			for _, tier := range schemas.Tiers {
				c, err := bus.JS.Consumer(ctx, g.spec.Stream, g.spec.DurableFor(tier))
				if errors.Is(err, jetstream.ErrConsumerNotFound) {
					continue
				}
				if err != nil {
					return nil, fmt.Errorf("consumer %s: %w", g.spec.DurableFor(tier), err)
				}
				info := c.CachedInfo() // fetched just now by Consumer
				out = append(out, metrics.QueueSample{Stage: string(g.stage), Tier: string(tier), Pending: info.NumPending, AckPending: info.NumAckPending})
			}
		}
		return out, nil
	}
}

// ServeIngest runs ingest until ctx is cancelled: the HTTP API h on --http, the NATS
// entry on studio.submit.<task> and the webhook sender. On shutdown it ends open event
// streams first, so the HTTP server can drain. m, when set, observes the webhook and
// slot-release consumers.
func ServeIngest(ctx context.Context, cfg *Config, bus *Bus, svc *ingest.Service, m *metrics.Metrics, log logrus.FieldLogger, h http.Handler, started func(net.Addr)) error {
	bg, stop := context.WithCancel(ctx)
	defer stop()
	// The background work of an ingest replica; each runs until bg ends.
	tasks := []func(context.Context) error{
		func(ctx context.Context) error { return svc.ServeNATS(ctx, streams.RequestServer{NC: bus.NC}) },
		func(ctx context.Context) error { return svc.ServeNATSBatches(ctx, streams.RequestServer{NC: bus.NC}) },
		// Routing weights follow the bucket "routing"; one replica's controller moves them.
		func(ctx context.Context) error { return RunRollouts(ctx, cfg, bus, svc.Catalog(), log) },
		func(ctx context.Context) error { return RunJobDeadlines(ctx, cfg, bus, log) },
		func(ctx context.Context) error { return RunRetention(ctx, cfg, bus, svc.Blobs(), log) },
		func(ctx context.Context) error {
			return svc.RunWebhooks(ctx, streams.Engine{JS: bus.JS}, cfg.Worker, observer(m))
		},
		func(ctx context.Context) error {
			// Frees a user's active-job slot when a job ends.
			if sec := svc.Security(); sec != nil {
				return RunSlotRelease(ctx, cfg, bus, sec.Active, m, log)
			}
			return nil
		},
	}
	errs := make(chan error, len(tasks))
	for _, run := range tasks {
		go func() { errs <- run(bg) }()
	}
	go func() {
		<-ctx.Done()
		svc.Close()
	}()
	err := ServeHTTPWith(ctx, cfg.HTTPListen, h, cfg.HTTPTimeouts, started)
	stop()
	all := []error{err}
	for range tasks {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// RunRetention deletes the objects no record reaches any more (erasure.Retention:
// expired uploads, inputs and results of expired jobs, stale intermediate artifacts)
// every --retention-interval until ctx is cancelled. Every ingest replica runs it; one at
// a time sweeps, holding the "retention" lease (streams.Lease), as the job-deadline
// sweeper does. A negative interval turns it off.
func RunRetention(ctx context.Context, cfg *Config, bus *Bus, blobs blob.Store, log logrus.FieldLogger) error {
	if cfg.RetentionInterval < 0 || blobs == nil {
		return nil
	}
	store, err := jobs.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	log = log.WithField("component", "retention")
	t := streams.DefaultTopology(1)
	r := &erasure.Retention{
		Blobs: blobs, Jobs: store,
		UploadTTL: cfg.UploadTTL, WorkTTL: cfg.WorkTTL, Interval: cfg.RetentionInterval,
		ObjectTTL: t.JobsMaxAge + t.ResultsMaxAge,
		Log:       log,
	}
	kv, err := streams.BindKV(ctx, bus.JS, streams.BucketLeases)
	if err != nil {
		return err
	}
	lease := &streams.Lease{KV: kv, Name: "retention", Holder: cfg.Worker, Log: log}
	return lease.Run(ctx, r.Run)
}

// RunJobDeadlines fails the jobs not final cfg.JobDeadline after their submission and
// publishes their results (processors.Deadlines), until ctx is cancelled. Every ingest
// replica calls it; one at a time sweeps, holding the "job-deadlines" lease
// (streams.Lease), and another takes over within the lease's term when it dies.
func RunJobDeadlines(ctx context.Context, cfg *Config, bus *Bus, log logrus.FieldLogger) error {
	if cfg.JobDeadline <= 0 {
		return nil
	}
	store, err := jobs.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	log = log.WithField("component", "job-deadlines")
	d := &processors.Deadlines{
		Jobs: store, Pub: streams.JSPublisher{JS: bus.JS}, Deadline: cfg.JobDeadline, Log: log,
	}
	kv, err := streams.BindKV(ctx, bus.JS, streams.BucketLeases)
	if err != nil {
		return err
	}
	lease := &streams.Lease{KV: kv, Name: "job-deadlines", Holder: cfg.Worker, Log: log}
	return lease.Run(ctx, d.Run)
}

// RunSlotRelease frees a user's active-job slot whenever a job's final result reaches
// RESULTS (active.ReleaseFinished on the durable consumer "active-jobs", shared by
// replicas), until ctx is cancelled.
func RunSlotRelease(ctx context.Context, cfg *Config, bus *Bus, active *quota.ActiveJobs, m *metrics.Metrics, log logrus.FieldLogger) error {
	r, err := streams.NewRunner(ctx, bus.NC, bus.JS, streams.HandlerFunc(active.ReleaseFinished), streams.RunnerConfig{
		Stage: quota.StageActiveJobs, Worker: cfg.Worker, Spec: quota.ActiveJobsConsumer(),
		Concurrency: 4, Observer: observer(m), Log: log.WithField("component", "active-jobs"),
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	return r.Run(ctx)
}

var _ streams.Observer = (*metrics.Metrics)(nil)

// observer is m as the consume engine's Observer, or nil without metrics (a nil
// *Metrics in the interface would still cost a timer per batch).
func observer(m *metrics.Metrics) streams.Observer {
	if m == nil {
		return nil
	}
	return m
}

// BusReady reports whether NATS is connected and the request stream exists.
func BusReady(ctx context.Context, bus *Bus) error {
	if !bus.NC.IsConnected() {
		return errors.New("NATS is not connected")
	}
	if _, err := bus.JS.Stream(ctx, schemas.StreamRequests); err != nil {
		return fmt.Errorf("stream %s unavailable: %w", schemas.StreamRequests, err)
	}
	return nil
}

// HTTPTimeouts bound how long one HTTP connection may hold the server. A zero field
// takes its DefaultHTTPTimeouts value.
type HTTPTimeouts struct {
	// ReadHeader is the time a client has to send its request headers (slowloris).
	ReadHeader time.Duration
	// Read is the time a client has to send a whole request, body included: long
	// enough for the largest upload at a slow client's rate. Event streams lift it.
	Read time.Duration
	// Write is the time from the end of the request headers to the end of the answer:
	// above the longest legitimate answer (POST /v2/predict waits up to a minute, then
	// a result download). Event streams (WebSocket, SSE) lift it for their connection.
	Write time.Duration
	// Idle is how long a keep-alive connection waits for its next request.
	Idle time.Duration
}

// DefaultHTTPTimeouts returns the timeouts of the --http-*-timeout flags' defaults: a
// 10 MB upload at 40 KB/s fits in Read.
func DefaultHTTPTimeouts() HTTPTimeouts {
	return HTTPTimeouts{ReadHeader: 10 * time.Second, Read: 5 * time.Minute, Write: 5 * time.Minute, Idle: 2 * time.Minute}
}

func (t HTTPTimeouts) withDefaults() HTTPTimeouts {
	d := DefaultHTTPTimeouts()
	for _, f := range []struct{ v, def *time.Duration }{{&t.ReadHeader, &d.ReadHeader}, {&t.Read, &d.Read}, {&t.Write, &d.Write}, {&t.Idle, &d.Idle}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// ServeHTTP serves h on addr with DefaultHTTPTimeouts until ctx is cancelled, then shuts
// down gracefully. started receives the bound address.
func ServeHTTP(ctx context.Context, addr string, h http.Handler, started func(net.Addr)) error {
	return ServeHTTPWith(ctx, addr, h, DefaultHTTPTimeouts(), started)
}

// ServeHTTPWith is ServeHTTP with the given timeouts.
func ServeHTTPWith(ctx context.Context, addr string, h http.Handler, t HTTPTimeouts, started func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (is it in use? set --http): %w", addr, err)
	}
	t = t.withDefaults()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle}
	if started != nil {
		started(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
