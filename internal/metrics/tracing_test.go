package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/schemas"
)

func inMemoryTracing(t *testing.T) (*metrics.Metrics, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return metrics.New(metrics.WithTracerProvider(tp)), exp
}

func attrs(s tracetest.SpanStub) map[string]any {
	out := map[string]any{}
	for _, kv := range s.Attributes {
		out[string(kv.Key)] = kv.Value.AsInterface()
	}
	return out
}

func TestStageRunSpanIsAChildOfTheJobsTraceparent(t *testing.T) {
	m, exp := inMemoryTracing(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ev := &schemas.JobEvent{JobID: "01job", Tenant: "acme", Tier: schemas.TierPremium, Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "small", TraceParent: tp}
	start := time.Now().Add(-2 * time.Second)

	end := m.StageStarted(context.Background(), schemas.StageInference, ev, 2, start)
	end("ok", nil, 1500*time.Millisecond)
	end = m.StageStarted(context.Background(), schemas.StagePreprocess, ev, 1, start)
	end("failed", errors.New("corrupt_image: the JPEG is truncated"), 10*time.Millisecond)

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	ok, failed := spans[0], spans[1]
	for _, s := range spans {
		if got := s.SpanContext.TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span %s trace id %s, want the job's", s.Name, got)
		}
		if got := s.Parent.SpanID().String(); got != "00f067aa0ba902b7" || !s.Parent.IsRemote() {
			t.Errorf("span %s parent %s (remote %v), want the traceparent's span", s.Name, got, s.Parent.IsRemote())
		}
		if s.SpanKind != trace.SpanKindConsumer {
			t.Errorf("span kind %v", s.SpanKind)
		}
	}
	if ok.Name != "studio.inference" || ok.EndTime.Sub(ok.StartTime) != 1500*time.Millisecond || !ok.StartTime.Equal(start) {
		t.Errorf("span %s %s..%s, want studio.inference lasting 1.5s from the run's start", ok.Name, ok.StartTime, ok.EndTime)
	}
	a := attrs(ok)
	for k, want := range map[string]any{"studio.job_id": "01job", "studio.stage": "inference", "studio.task": "remove-background", "studio.model": "isnet", "studio.model_version": "small", "studio.tier": "premium", "studio.attempt": int64(2), "studio.outcome": "ok"} {
		if a[k] != want {
			t.Errorf("attribute %s = %v, want %v", k, a[k], want)
		}
	}
	if ok.Status.Code == codes.Error {
		t.Error("successful run has an error status")
	}
	if failed.Status.Code != codes.Error || len(failed.Events) == 0 || attrs(failed)["studio.outcome"] != "failed" {
		t.Errorf("failed run: status %v, %d events, outcome %v; want an error status with the error recorded", failed.Status, len(failed.Events), attrs(failed)["studio.outcome"])
	}
	// Only the successful run counts in the stage histogram.
	if v := mustSample(t, m.Registry(), "studio_stage_duration_seconds", map[string]string{"stage": "inference", "task": "remove-background"}); v != 1 {
		t.Errorf("inference durations = %v, want 1", v)
	}
	if _, ok := sample(t, m.Registry(), "studio_stage_duration_seconds", map[string]string{"stage": "preprocess"}); ok {
		t.Error("a failed run was recorded as a stage duration")
	}
}

func TestStageRunWithoutTraceparentStartsATrace(t *testing.T) {
	m, exp := inMemoryTracing(t)
	end := m.StageStarted(context.Background(), schemas.StageStore, &schemas.JobEvent{JobID: "x", TraceParent: "garbage"}, 1, time.Now())
	end("ok", nil, time.Millisecond)
	spans := exp.GetSpans()
	if len(spans) != 1 || !spans[0].SpanContext.IsValid() || spans[0].Parent.IsValid() {
		t.Fatalf("spans %+v, want one root span", spans)
	}
}

func TestJobFinishedCountsOutcomes(t *testing.T) {
	m := metrics.New()
	ev := &schemas.JobEvent{Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "small"}
	m.JobFinished(ev, schemas.StatusSucceeded)
	m.JobFinished(ev, schemas.StatusSucceeded)
	m.JobFinished(ev, schemas.StatusCancelled)
	for outcome, want := range map[string]float64{"succeeded": 2, "cancelled": 1} {
		if v := mustSample(t, m.Registry(), "studio_jobs_total", map[string]string{"task": "remove-background", "model": "isnet", "version": "small", "outcome": outcome}); v != want {
			t.Errorf("%s = %v, want %v", outcome, v, want)
		}
	}
}

func TestStartTracing(t *testing.T) {
	t.Run("no endpoint: a no-op provider and nothing dialled", func(t *testing.T) {
		tp, stop, err := metrics.StartTracing(context.Background(), "", "up", "w1")
		if err != nil {
			t.Fatal(err)
		}
		_, span := tp.Tracer("x").Start(context.Background(), "s")
		if span.SpanContext().IsValid() || span.IsRecording() {
			t.Error("tracing is on without an endpoint")
		}
		if err := stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	for _, endpoint := range []string{"http://127.0.0.1:4318", "127.0.0.1:4318"} {
		t.Run("endpoint "+endpoint+": a recording provider that starts without a collector", func(t *testing.T) {
			tp, stop, err := metrics.StartTracing(context.Background(), endpoint, "worker-inference", "w1")
			if err != nil {
				t.Fatal(err)
			}
			_, span := tp.Tracer("x").Start(context.Background(), "s")
			if !span.IsRecording() {
				t.Error("span is not recording")
			}
			// No span is ended, so shutdown has nothing to send and dials nothing.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := stop(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}
