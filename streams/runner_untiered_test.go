package streams_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func publishTelemetry(t *testing.T, s *streamstest.Server, n int) {
	t.Helper()
	outs := make([]streams.Output, n)
	for i := range outs {
		outs[i] = streams.Output{Subject: "studio.telemetry.preprocess", MsgID: fmt.Sprint("m", i), Data: []byte(fmt.Sprint(i))}
	}
	if err := (streams.JSPublisher{JS: s.JS}).Publish(context.Background(), outs...); err != nil {
		t.Fatal(err)
	}
}

// telemetrySpec is an untiered consumer like the sink's.
func telemetrySpec(ackWait time.Duration) streams.ConsumerSpec {
	return streams.ConsumerSpec{Stream: schemas.StreamTelemetry, Durable: "batch-test", FilterSubjects: []string{"studio.telemetry.>"},
		AckWait: ackWait, MaxAckPending: 100, MaxDeliver: -1}
}

func runUntiered(t *testing.T, s *streamstest.Server, h streams.Handler, cfg streams.RunnerConfig) {
	t.Helper()
	cfg.Stage, cfg.Worker, cfg.Log = "sink", "test", quietLog()
	cfg.PullExpiry = time.Second
	r, err := streams.Engine{JS: s.JS}.NewRunner(context.Background(), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestRunnerUntiered(t *testing.T) {
	ctx := context.Background()

	t.Run("a full batch is handed over at once, a partial one after MaxWait", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 15)
		var mu sync.Mutex
		var sizes []int
		var waits []time.Duration
		var first *streams.Msg
		last := time.Now()
		runUntiered(t, s, streams.BatchHandlerFunc(func(_ context.Context, b []*streams.Msg) []streams.Result {
			mu.Lock()
			defer mu.Unlock()
			if first == nil {
				first = b[0]
			}
			sizes = append(sizes, len(b))
			waits = append(waits, time.Since(last))
			last = time.Now()
			return make([]streams.Result, len(b))
		}), streams.RunnerConfig{Spec: telemetrySpec(30 * time.Second), MaxBatch: 10, MaxWait: 300 * time.Millisecond})
		streamstest.Eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 2 }, "two batches never came")
		mu.Lock()
		defer mu.Unlock()
		if sizes[0] != 10 || sizes[1] != 5 {
			t.Fatalf("batch sizes %v; want [10 5]", sizes)
		}
		if waits[1] < 250*time.Millisecond || waits[1] > 3*time.Second {
			t.Fatalf("the partial batch came %s after the full one; want about MaxWait (300ms)", waits[1])
		}
		if first.StreamSeq != 1 || first.Delivered != 1 || first.Published.IsZero() || first.Stream != schemas.StreamTelemetry || first.Tier != "" {
			t.Fatalf("metadata not filled in: %+v", first)
		}
		streamstest.Eventually(t, 5*time.Second, func() bool {
			n, err := streams.Backlog(ctx, s.JS, telemetrySpec(0), "")
			return err == nil && n == 0
		}, "messages not acknowledged after their batch succeeded")
	})

	t.Run("MaxBatchBytes ends a batch of large messages before MaxBatch", func(t *testing.T) {
		s := streamstest.Start(t)
		outs := make([]streams.Output, 10)
		for i := range outs {
			outs[i] = streams.Output{Subject: "studio.telemetry.batch", MsgID: fmt.Sprint("big", i), Data: make([]byte, 1000)}
		}
		if err := (streams.JSPublisher{JS: s.JS}).Publish(ctx, outs...); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var sizes []int
		total := 0
		runUntiered(t, s, streams.BatchHandlerFunc(func(_ context.Context, b []*streams.Msg) []streams.Result {
			mu.Lock()
			defer mu.Unlock()
			sizes = append(sizes, len(b))
			total += len(b)
			return make([]streams.Result, len(b))
		}), streams.RunnerConfig{Spec: telemetrySpec(30 * time.Second), MaxBatch: 100, MaxBatchBytes: 3000, MaxWait: 300 * time.Millisecond})
		streamstest.Eventually(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return total == 10 }, "the messages never all came")
		mu.Lock()
		defer mu.Unlock()
		for _, n := range sizes {
			if n > 3 {
				t.Fatalf("batch sizes %v; want at most 3 messages of 1000 bytes (MaxBatchBytes 3000)", sizes)
			}
		}
	})

	t.Run("a batch held longer than AckWait is kept alive and handled once", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 3)
		var calls, msgs atomic.Int32
		runUntiered(t, s, streams.BatchHandlerFunc(func(_ context.Context, b []*streams.Msg) []streams.Result {
			calls.Add(1)
			msgs.Add(int32(len(b)))
			time.Sleep(2500 * time.Millisecond) // ClickHouse is down, say
			return make([]streams.Result, len(b))
		}), streams.RunnerConfig{Spec: telemetrySpec(time.Second), MaxBatch: 10, MaxWait: 200 * time.Millisecond, AckAsync: true})
		streamstest.Eventually(t, 10*time.Second, func() bool {
			n, err := streams.Backlog(ctx, s.JS, telemetrySpec(0), "")
			return err == nil && n == 0 && msgs.Load() == 3
		}, "the held batch was not acknowledged")
		time.Sleep(1500 * time.Millisecond) // past another AckWait: nothing comes back
		if calls.Load() != 1 || msgs.Load() != 3 {
			t.Fatalf("handler ran %d times on %d messages; want once on 3 (no redelivery while held)", calls.Load(), msgs.Load())
		}
	})

	t.Run("a consumer that never gives up keeps retrying past any delivery count", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 1)
		var calls atomic.Int32
		runUntiered(t, s, streams.HandlerFunc(func(context.Context, *streams.Msg) ([]streams.Output, error) {
			if calls.Add(1) < 7 {
				return nil, fmt.Errorf("ClickHouse is down")
			}
			return nil, nil
		}), streams.RunnerConfig{Spec: telemetrySpec(time.Second), BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
		streamstest.Eventually(t, 10*time.Second, func() bool { return calls.Load() == 7 }, "retries stopped at %d", calls.Load())
		if n := len(dlqMessages(t, s)); n != 0 {
			t.Fatalf("%d dead letters; MaxDeliver -1 must never dead-letter a transient failure", n)
		}
	})

	t.Run("a spec without a stream, or an engine without JetStream, is refused", func(t *testing.T) {
		s := streamstest.Start(t)
		h := streams.HandlerFunc(func(context.Context, *streams.Msg) ([]streams.Output, error) { return nil, nil })
		if _, err := (streams.Engine{JS: s.JS}).NewRunner(ctx, h, streams.RunnerConfig{Stage: "sink", Spec: streams.ConsumerSpec{Durable: "x"}}); err == nil {
			t.Fatal("NewRunner accepted a spec without a stream")
		}
		if _, err := (streams.Engine{}).NewRunner(ctx, h, streams.RunnerConfig{Stage: "sink", Spec: telemetrySpec(time.Second)}); err == nil {
			t.Fatal("NewRunner accepted an engine without JetStream")
		}
	})
}
