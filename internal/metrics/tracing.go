package metrics

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const tracerName = "github.com/creativeai-studio/studio"

// StartTracing returns a tracer provider that exports spans over OTLP/HTTP to endpoint,
// and a shutdown function that flushes what is buffered (call it on exit, with a
// deadline). endpoint is a URL ("http://otel-collector:4318"; the path defaults to
// /v1/traces; http:// sends in clear) or host:port (HTTPS). An empty endpoint returns
// a no-op provider: tracing is off by default and nothing is dialled. The exporter
// connects lazily, so an unreachable collector costs dropped spans, never a failed
// start. Sampling follows the job's traceparent flags (parent-based, else always).
func StartTracing(ctx context.Context, endpoint, process, instance string) (trace.TracerProvider, func(context.Context) error, error) {
	if endpoint == "" {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	var opt otlptracehttp.Option
	if strings.Contains(endpoint, "://") {
		opt = otlptracehttp.WithEndpointURL(endpoint)
	} else {
		opt = otlptracehttp.WithEndpoint(endpoint)
	}
	exp, err := otlptracehttp.New(ctx, opt)
	if err != nil {
		return nil, nil, fmt.Errorf("--otlp-endpoint %q: %w (use http://host:4318 or host:port)", endpoint, err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "studio"),
			attribute.String("service.instance.id", instance),
			attribute.String("studio.process", process),
		)),
	)
	return tp, tp.Shutdown, nil
}

// truncateStatus keeps span status descriptions short; the full error is in the event.
func truncateStatus(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}
