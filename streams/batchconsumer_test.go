package streams_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func openBatch(t *testing.T, s *streamstest.Server, ackWait time.Duration) *streams.BatchConsumer {
	t.Helper()
	c, err := streams.BatchOpener{JS: s.JS}.Open(context.Background(), streams.BatchSpec{
		Stream: schemas.StreamTelemetry, Durable: "batch-test", FilterSubjects: []string{"studio.telemetry.>"},
		AckWait: ackWait, MaxAckPending: 100, DLQStage: "sink", Worker: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

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

func TestBatchConsumer(t *testing.T) {
	ctx := context.Background()

	t.Run("a full batch returns at once, a partial one after the wait", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 15)
		c := openBatch(t, s, 30*time.Second)
		start := time.Now()
		got, err := c.Fetch(ctx, 10, 5*time.Second)
		if err != nil || len(got) != 10 {
			t.Fatalf("Fetch(10) = %d messages, %v", len(got), err)
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("a full batch waited %s", time.Since(start))
		}
		start = time.Now()
		rest, err := c.Fetch(ctx, 10, 300*time.Millisecond)
		if err != nil || len(rest) != 5 {
			t.Fatalf("second Fetch = %d messages, %v", len(rest), err)
		}
		if waited := time.Since(start); waited < 250*time.Millisecond || waited > 3*time.Second {
			t.Fatalf("a partial batch returned after %s, want about the 300ms wait", waited)
		}
		if got[0].StreamSeq != 1 || got[0].Delivered != 1 || got[0].Published.IsZero() {
			t.Fatalf("metadata not filled in: %+v", got[0])
		}
		empty, err := c.Fetch(ctx, 10, 50*time.Millisecond)
		if err != nil || len(empty) != 0 {
			t.Fatalf("Fetch on a drained consumer = %d messages, %v", len(empty), err)
		}
	})

	t.Run("acked messages stay acked, nak'ed ones come back", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 4)
		c := openBatch(t, s, 30*time.Second)
		got, err := c.Fetch(ctx, 4, time.Second)
		if err != nil || len(got) != 4 {
			t.Fatalf("Fetch = %d, %v", len(got), err)
		}
		for _, d := range got[:3] {
			if err := d.Ack(); err != nil {
				t.Fatal(err)
			}
		}
		if err := got[3].Nak(0); err != nil {
			t.Fatal(err)
		}
		again, err := c.Fetch(ctx, 4, 500*time.Millisecond)
		if err != nil || len(again) != 1 || again[0].StreamSeq != got[3].StreamSeq || again[0].Delivered != 2 {
			t.Fatalf("after nak: %d messages, %v", len(again), err)
		}
		_ = again[0].Ack()
		streamstest.Eventually(t, 5*time.Second, func() bool {
			n, err := c.Pending(ctx)
			return err == nil && n == 0
		}, "nothing pending after every ack")
	})

	t.Run("InProgress holds a message past its AckWait", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 1)
		c := openBatch(t, s, time.Second)
		got, err := c.Fetch(ctx, 1, time.Second)
		if err != nil || len(got) != 1 {
			t.Fatalf("Fetch = %d, %v", len(got), err)
		}
		deadline := time.Now().Add(2500 * time.Millisecond)
		for time.Now().Before(deadline) {
			_ = got[0].InProgress()
			if again, _ := c.Fetch(ctx, 1, 300*time.Millisecond); len(again) != 0 {
				t.Fatalf("message redelivered while held")
			}
		}
		_ = got[0].Ack()
	})

	t.Run("DeadLetter copies the message with reason headers and terms it", func(t *testing.T) {
		s := streamstest.Start(t)
		publishTelemetry(t, s, 1)
		c := openBatch(t, s, time.Second)
		got, err := c.Fetch(ctx, 1, time.Second)
		if err != nil || len(got) != 1 {
			t.Fatalf("Fetch = %d, %v", len(got), err)
		}
		if err := c.DeadLetter(ctx, got[0], errors.New("not a stage run")); err != nil {
			t.Fatal(err)
		}
		// Retrying the dead letter (a lost Term) writes no second copy.
		if err := c.DeadLetter(ctx, got[0], errors.New("not a stage run")); err != nil {
			t.Fatal(err)
		}
		dlq := dlqMessages(t, s)
		if len(dlq) != 1 {
			t.Fatalf("DLQ holds %d messages, want 1", len(dlq))
		}
		m := dlq[0]
		if m.Subject != "studio.dlq.sink" || string(m.Data) != "0" ||
			m.Header.Get(streams.HeaderDLQReason) != "not a stage run" || m.Header.Get(streams.HeaderDLQStage) != "sink" ||
			m.Header.Get(streams.HeaderDLQStream) != schemas.StreamTelemetry || m.Header.Get(streams.HeaderDLQSeq) != "1" ||
			m.Header.Get(streams.HeaderDLQSubject) != "studio.telemetry.preprocess" || m.Header.Get(streams.HeaderDLQWorker) != "test" {
			t.Fatalf("dead letter %s: %q, headers %v", m.Subject, m.Data, m.Header)
		}
		// Termed: not redelivered after AckWait.
		if again, _ := c.Fetch(ctx, 1, 1500*time.Millisecond); len(again) != 0 {
			t.Fatalf("a dead-lettered message was delivered again")
		}
	})

	t.Run("a spec without a stream is refused", func(t *testing.T) {
		s := streamstest.Start(t)
		if _, err := (streams.BatchOpener{JS: s.JS}).Open(ctx, streams.BatchSpec{Durable: "x"}); err == nil {
			t.Fatal("Open accepted a spec without a stream")
		}
		if _, err := (streams.BatchOpener{}).Open(ctx, streams.BatchSpec{Stream: "S", Durable: "x"}); err == nil {
			t.Fatal("Open accepted an opener without JetStream")
		}
	})
}
