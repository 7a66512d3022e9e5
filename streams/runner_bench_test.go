package streams_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// BenchmarkRunner is the engine's hot path: b.N requests waiting in the stream are
// pulled, handed to a handler that forwards each to the next stream, published, and
// acknowledged. It measures the time per message from the runner's start until the
// last one is handled.
func BenchmarkRunner(b *testing.B) {
	s := streamstest.Start(b)
	ctx := context.Background()
	spec := tierSpec(schemas.StreamRequests, "preprocess", schemas.RootRequests, 30*time.Second, 5)
	data := []byte(`{"job_id":"bench"}`)
	for i := range b.N {
		if _, err := s.JS.Publish(ctx, schemas.RequestSubject(schemas.Tiers[i%len(schemas.Tiers)], schemas.TaskRemoveBackground), data, jetstream.WithMsgID(fmt.Sprint("req-", i))); err != nil {
			b.Fatal(err)
		}
	}
	var handled atomic.Int64
	done := make(chan struct{})
	h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		out := []streams.Output{{Subject: schemas.PreprocessedSubject(m.Tier, "isnet"), MsgID: fmt.Sprint("out-", m.StreamSeq), Data: m.Data}}
		if handled.Add(1) == int64(b.N) {
			close(done)
		}
		return out, nil
	})
	r, err := streams.NewRunner(ctx, s.NC, s.JS, h, streams.RunnerConfig{
		Stage: schemas.StagePreprocess, Worker: "bench", Spec: spec, Concurrency: 8,
		PullExpiry: time.Second, DrainTimeout: 5 * time.Second, Log: quietLog(),
	})
	if err != nil {
		b.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	b.ReportAllocs()
	b.ResetTimer()
	go func() { _ = r.Run(rctx); close(stopped) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("handled %d of %d messages in a minute", handled.Load(), b.N)
	}
	b.StopTimer()
	cancel()
	<-stopped
}
