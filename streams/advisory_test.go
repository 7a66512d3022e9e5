package streams_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestAMessageWhoseWorkersAllDiedIsDeadLetteredWhenARunnerStarts: every worker of a
// stage takes a message and dies before acking it, until the server gives up on it; no
// runner is up when the max-deliveries advisory fires (the server sends it at the next
// pull, which a worker that is no runner makes). The advisory is kept in the
// ADVISORIES stream, and the first runner that starts dead-letters the message, tells
// its failure handler and removes it from the work queue.
func TestAMessageWhoseWorkersAllDiedIsDeadLetteredWhenARunnerStarts(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	spec := tierSpec(schemas.StreamInferred, "postprocess", schemas.RootInferred, 300*time.Millisecond, 2)
	cons, err := spec.Ensure(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg(schemas.InferredSubject(schemas.TierNormal, schemas.TaskRemoveBackground))
	msg.Data = []byte(`{"job_id":"orphan"}`)
	msg.Header.Set(streams.HeaderJobID, "orphan")
	if _, err := s.JS.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	// Two workers that take the message and die before acking it; nobody listens for
	// the advisory the server then sends.
	for delivery := 1; delivery <= 2; delivery++ {
		streamstest.Eventually(t, 10*time.Second, func() bool {
			b, err := cons[schemas.TierNormal].Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				return false
			}
			n := 0
			for range b.Messages() {
				n++
			}
			return n == 1
		}, "delivery %d never came", delivery)
	}
	// The server sends the advisory at the next pull after the last AckWait: from a
	// third worker here, itself no runner.
	time.Sleep(400 * time.Millisecond)
	if b, err := cons[schemas.TierNormal].Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond)); err == nil {
		for range b.Messages() {
			t.Fatal("a message past MaxDeliver was delivered again")
		}
	}
	adv, err := s.JS.Stream(ctx, streams.StreamAdvisories)
	if err != nil {
		t.Fatalf("the topology has no %s stream: %v", streams.StreamAdvisories, err)
	}
	streamstest.Eventually(t, 10*time.Second, func() bool {
		info, err := adv.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, "the max-deliveries advisory was not kept in %s", streams.StreamAdvisories)
	if n := len(dlqMessages(t, s)); n != 0 {
		t.Fatalf("the DLQ holds %d messages before any runner started", n)
	}

	var failed atomic.Value
	var calls atomic.Int32
	startRunner(t, s, streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		calls.Add(1)
		return nil, nil
	}), func(c *streams.RunnerConfig) {
		c.Stage, c.Spec = schemas.StagePostprocess, spec
		c.OnFailure = func(_ context.Context, m *streams.Msg, err error) error {
			if m.JobID == "orphan" {
				failed.Store(err)
			}
			return nil
		}
	})
	streamstest.Eventually(t, 15*time.Second, func() bool { return len(dlqMessages(t, s)) == 1 }, "the runner did not dead-letter the orphaned message")
	if err, _ := failed.Load().(error); !errors.Is(err, streams.ErrMaxDeliveries) {
		t.Errorf("failure handler saw %v; want ErrMaxDeliveries", err)
	}
	h := dlqMessages(t, s)[0].Header
	if h.Get(streams.HeaderDLQStream) != schemas.StreamInferred || h.Get(streams.HeaderDLQAttempts) != "2" || h.Get(streams.HeaderDLQStage) != "postprocess" {
		t.Errorf("DLQ headers = %v", h)
	}
	st, _ := s.JS.Stream(ctx, schemas.StreamInferred)
	streamstest.Eventually(t, 5*time.Second, func() bool {
		info, err := st.Info(ctx)
		return err == nil && info.State.Msgs == 0
	}, "the dead letter was not removed from the work queue")
	if calls.Load() != 0 {
		t.Errorf("the handler ran %d times on a message past its deliveries", calls.Load())
	}
	// The advisory was acknowledged: a second runner of the group does not write it again.
	c, err := s.JS.Consumer(ctx, streams.StreamAdvisories, "dlq-postprocess")
	if err != nil {
		t.Fatal(err)
	}
	streamstest.Eventually(t, 5*time.Second, func() bool {
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	}, "the advisory was not acknowledged")
}
