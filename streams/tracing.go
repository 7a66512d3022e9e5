package streams

import (
	"context"

	"github.com/creativeai-studio/studio/internal/trace"
)

// HeaderJobID carries the job id on every pipeline message.
const HeaderJobID = "Studio-Job-Id"

// Tracing fills each message's JobID and TraceID from its Studio-Job-Id and
// traceparent headers, so every log line about it (Msg.Log) names the job and its
// trace. It allocates nothing.
func Tracing() Middleware {
	return func(next Handler) Handler {
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			for _, m := range batch {
				m.JobID = m.Header.Get(HeaderJobID)
				m.TraceID = trace.ID(m.Header.Get("traceparent"))
			}
			return next.Handle(ctx, batch)
		})
	}
}
