package metrics

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/creativeai-studio/studio/schemas"
)

// Stage-run outcomes as processors.Handler reports them (the telemetry event's outcome).
const (
	runOK = "ok"
)

// StageStarted implements processors.Observer (the guard is in internal/app, which
// wires the two; metrics imports no pipeline package): it starts the run's span, a child of the
// job's traceparent (the span ingest accepted or created), and returns the function that
// ends it. A successful run is also recorded in studio_stage_duration_seconds. Spans go
// nowhere unless New got WithTracerProvider.
func (m *Metrics) StageStarted(ctx context.Context, stage schemas.Stage, ev *schemas.JobEvent, attempt int, at time.Time) func(outcome string, err error, d time.Duration) {
	if m == nil {
		return func(string, error, time.Duration) {}
	}
	parent := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": ev.TraceParent})
	_, span := m.tracer.Start(parent, "studio."+string(stage),
		trace.WithTimestamp(at),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("studio.stage", string(stage)),
			attribute.String("studio.job_id", ev.JobID),
			attribute.String("studio.tenant", ev.Tenant),
			attribute.String("studio.tier", string(ev.Tier)),
			attribute.String("studio.task", string(ev.Task)),
			attribute.String("studio.model", ev.Model),
			attribute.String("studio.model_version", ev.ModelVersion),
			attribute.Int("studio.attempt", attempt),
		))
	task := string(ev.Task)
	return func(outcome string, err error, d time.Duration) {
		span.SetAttributes(attribute.String("studio.outcome", outcome))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, truncateStatus(err.Error()))
		}
		span.End(trace.WithTimestamp(at.Add(d)))
		if outcome == runOK {
			m.StageDone(string(stage), task, d)
		}
	}
}

// JobFinished implements processors.Observer: it counts the job in studio_jobs_total.
func (m *Metrics) JobFinished(ev *schemas.JobEvent, status schemas.Status) {
	if m == nil {
		return
	}
	m.CountJob(string(ev.Task), ev.Model, ev.ModelVersion, string(status))
}
