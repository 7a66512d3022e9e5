package streams_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/creativeai-studio/studio/streams"
)

func TestTracing(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name         string
		header       nats.Header
		job, traceID string
	}{
		{name: "the job id and trace id come from the headers", header: nats.Header{streams.HeaderJobID: {"job-1"}, "traceparent": {tp}},
			job: "job-1", traceID: "4bf92f3577b34da6a3ce929d0e0e4736"},
		{name: "an invalid traceparent gives no trace id", header: nats.Header{"traceparent": {"00-zz"}}},
		{name: "a message without headers has neither", header: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &streams.Msg{Header: tt.header}
			var seen string
			h := streams.Tracing()(streams.HandlerFunc(func(_ context.Context, m *streams.Msg) ([]streams.Output, error) {
				seen = m.TraceID
				return nil, nil
			}))
			h.Handle(context.Background(), []*streams.Msg{m})
			if m.JobID != tt.job || m.TraceID != tt.traceID || seen != tt.traceID {
				t.Fatalf("job %q trace %q (handler saw %q); want %q and %q", m.JobID, m.TraceID, seen, tt.job, tt.traceID)
			}
		})
	}

	t.Run("the middleware allocates nothing per message", func(t *testing.T) {
		batch := []*streams.Msg{{Header: nats.Header{streams.HeaderJobID: {"job-1"}, "traceparent": {tp}}}}
		results := make([]streams.Result, 1)
		h := streams.Tracing()(streams.BatchHandlerFunc(func(context.Context, []*streams.Msg) []streams.Result { return results }))
		ctx := context.Background()
		if n := testing.AllocsPerRun(100, func() { h.Handle(ctx, batch) }); n != 0 {
			t.Fatalf("%v allocations per batch", n)
		}
	})
}
