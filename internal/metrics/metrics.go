// Package metrics is the observability plumbing of one studio process: the Prometheus
// metrics it serves on /metrics, HTTP and blob-storage instrumentation, the JetStream
// queue-depth poller, the stage-run observer that also emits OpenTelemetry spans, the
// optional OTLP trace exporter, and success-log sampling.
//
// A process builds one Metrics and passes it down. Nothing is registered globally, so
// several pipelines can run in one test binary. Every method is safe on a nil *Metrics
// (it does nothing), so parts built without metrics (tests, tools) need no stubs.
//
// Labels are bounded on purpose: stage, tier, task, model, version, device, backend,
// op, outcome, the HTTP route pattern, method and status. Job, user and tenant ids
// never become labels; they are in the logs and traces.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Job outcomes, the values of studio_jobs_total's outcome label.
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomeCancelled = "cancelled"
)

// Buckets, in seconds. Stage and inference buckets reach two minutes because IS-Net on
// one CPU core takes 4-6 s and the inference AckWait is 2 min; HTTP uploads are short.
var (
	stageBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}
	httpBuckets  = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	blobBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64}
)

// Metrics holds the process's registry and every studio series. Safe for concurrent
// use; all methods are no-ops on a nil receiver.
type Metrics struct {
	reg    *prometheus.Registry
	tracer trace.Tracer

	jobs          *prometheus.CounterVec
	stageDuration *prometheus.HistogramVec
	httpDuration  *prometheus.HistogramVec
	queueDepth    *prometheus.GaugeVec
	consumerLag   *prometheus.GaugeVec
	dlq           *prometheus.CounterVec
	retries       *prometheus.CounterVec
	handled       *prometheus.HistogramVec
	inference     *prometheus.HistogramVec
	batchSize     *prometheus.HistogramVec
	modelLoad     *prometheus.GaugeVec
	blobOp        *prometheus.HistogramVec
	drops         drops
	stageCPU      stageCPU
}

// Option configures New.
type Option func(*Metrics)

// WithTracerProvider makes stage runs emit spans through tp (see StartTracing); without
// it they emit none.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(m *Metrics) {
		if tp != nil {
			m.tracer = tp.Tracer(tracerName)
		}
	}
}

// New returns a registry with the studio series and the Go runtime and process
// collectors.
func New(opts ...Option) *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		tracer: noop.NewTracerProvider().Tracer(tracerName),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_jobs_total",
			Help: "Jobs that reached a final status in the pipeline (store stage or failure hook), by outcome: succeeded, failed, cancelled. Result-cache hits answered at ingest are not counted.",
		}, []string{"task", "model", "version", "outcome"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_stage_duration_seconds",
			Help:    "Duration of successful stage runs, from receipt by the handler to the job record update.",
			Buckets: stageBuckets,
		}, []string{"stage", "task"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern (never the raw path), method and status code.",
			Buckets: httpBuckets,
		}, []string{"route", "method", "status"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "studio_queue_depth",
			Help: "Messages waiting for or held by a stage's tier consumer (num_pending + num_ack_pending), polled from JetStream consumer info.",
		}, []string{"stage", "tier"}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "studio_consumer_lag",
			Help: "Messages not yet delivered to a stage's tier consumer (num_pending), polled from JetStream consumer info.",
		}, []string{"stage", "tier"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_dlq_messages_total",
			Help: "Messages this process copied to studio.dlq.<stage> (permanent errors and exhausted deliveries).",
		}, []string{"stage"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_stage_retries_total",
			Help: "Stage attempts handed back for a delayed redelivery after a transient failure.",
		}, []string{"stage"}),
		handled: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_consumer_handle_seconds",
			Help:    "Time the consume engine spent handling the batch of each message (handler, output publish, dead letter), by consumer (stage, sink, webhooks, active-jobs) and outcome: ok, retry, returned, dead_letter.",
			Buckets: stageBuckets,
		}, []string{"stage", "outcome"}),
		inference: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_inference_seconds",
			Help:    "Duration of successful model runs (session Run only, without tensor I/O).",
			Buckets: stageBuckets,
		}, []string{"model", "version", "device"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_batch_size",
			Help:    "Jobs handed to the inference stage in one batch, per model.",
			Buckets: batchBuckets,
		}, []string{"model"}),
		modelLoad: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "studio_model_load_seconds",
			Help: "How long the last load of a model version's sessions took in this process.",
		}, []string{"model", "version"}),
		blobOp: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "studio_blob_op_seconds",
			Help:    "Object storage operation duration by backend and op (put, get: until the object is open, stat, delete, list, presign).",
			Buckets: blobBuckets,
		}, []string{"backend", "op"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.jobs, m.stageDuration, m.httpDuration, m.queueDepth, m.consumerLag, m.dlq,
		m.retries, m.handled, m.inference, m.batchSize, m.modelLoad, m.blobOp,
	)
	m.drops = newDrops()
	m.reg.MustRegister(m.drops.collectors()...)
	m.stageCPU = newStageCPU()
	m.reg.MustRegister(m.stageCPU.collectors()...)
	for _, o := range opts {
		o(m)
	}
	return m
}

// Registry returns the registry behind /metrics, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// Handler serves the registry in the Prometheus text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// InitStage creates the stage's counters at zero, so that rate() and increase() see
// the first DLQ message or retry of a fresh process.
func (m *Metrics) InitStage(stage string) {
	if m == nil {
		return
	}
	m.dlq.WithLabelValues(stage)
	m.retries.WithLabelValues(stage)
}

// InitJobs creates the job counters of one served model version at zero.
func (m *Metrics) InitJobs(task, model, version string) {
	if m == nil {
		return
	}
	for _, o := range []string{OutcomeSucceeded, OutcomeFailed, OutcomeCancelled} {
		m.jobs.WithLabelValues(task, model, version, o)
	}
}

// CountJob counts a job that reached a final status.
func (m *Metrics) CountJob(task, model, version, outcome string) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(task, model, version, outcome).Inc()
}

// StageDone records a successful stage run.
func (m *Metrics) StageDone(stage, task string, d time.Duration) {
	if m == nil {
		return
	}
	m.stageDuration.WithLabelValues(stage, task).Observe(d.Seconds())
}

// DeadLettered counts a message written to the stage's DLQ (streams.Observer).
func (m *Metrics) DeadLettered(stage string) {
	if m == nil {
		return
	}
	m.dlq.WithLabelValues(stage).Inc()
}

// Retried counts a stage attempt handed back for redelivery after a failure
// (streams.Observer).
func (m *Metrics) Retried(stage string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(stage).Inc()
}

// Handled records how one message of a consumer ended and how long its batch took
// (streams.Observer).
func (m *Metrics) Handled(stage, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.handled.WithLabelValues(stage, outcome).Observe(took.Seconds())
}

// InferenceRun records one successful model run.
func (m *Metrics) InferenceRun(model, version, device string, d time.Duration) {
	if m == nil {
		return
	}
	m.inference.WithLabelValues(model, version, device).Observe(d.Seconds())
}

// Batch records how many jobs of one model went into one inference batch.
func (m *Metrics) Batch(model string, n int) {
	if m == nil || n < 1 {
		return
	}
	m.batchSize.WithLabelValues(model).Observe(float64(n))
}

// ModelLoaded records how long loading a model version took.
func (m *Metrics) ModelLoaded(model, version string, d time.Duration) {
	if m == nil {
		return
	}
	m.modelLoad.WithLabelValues(model, version).Set(d.Seconds())
}

func (m *Metrics) blobOpDone(backend, op string, start time.Time) {
	m.blobOp.WithLabelValues(backend, op).Observe(time.Since(start).Seconds())
}
