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

// deliveredMsg is a message as the runner would hand it over after n deliveries.
func deliveredMsg(seq uint64, n int) *streams.Msg {
	return &streams.Msg{
		Subject: "studio.telemetry.preprocess", Data: []byte("0"), Stream: schemas.StreamTelemetry, StreamSeq: seq, Delivered: n,
		Header: nats.Header{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, jetstream.MsgIDHeader: {"m0"}},
	}
}

func TestDeadLetter(t *testing.T) {
	ctx := context.Background()

	t.Run("a dead letter carries the message, its headers and the reason headers, once", func(t *testing.T) {
		s := streamstest.Start(t)
		pub := streams.JSPublisher{JS: s.JS}
		m := deliveredMsg(1, 3)
		for range 2 { // a retry after a lost Term writes no second copy
			if err := streams.DeadLetter(ctx, pub, m, "sink", "test", errors.New("not a stage run")); err != nil {
				t.Fatal(err)
			}
		}
		dlq := dlqMessages(t, s)
		if len(dlq) != 1 {
			t.Fatalf("DLQ holds %d messages, want 1", len(dlq))
		}
		d := dlq[0]
		if d.Subject != "studio.dlq.sink" || string(d.Data) != "0" ||
			d.Header.Get(streams.HeaderDLQReason) != "not a stage run" || d.Header.Get(streams.HeaderDLQStage) != "sink" ||
			d.Header.Get(streams.HeaderDLQAttempts) != "3" ||
			d.Header.Get(streams.HeaderDLQStream) != schemas.StreamTelemetry || d.Header.Get(streams.HeaderDLQSeq) != "1" ||
			d.Header.Get(streams.HeaderDLQSubject) != "studio.telemetry.preprocess" || d.Header.Get(streams.HeaderDLQWorker) != "test" ||
			d.Header.Get("traceparent") == "" {
			t.Fatalf("dead letter %s: %q, headers %v", d.Subject, d.Data, d.Header)
		}
		if d.Header.Get(jetstream.MsgIDHeader) == "m0" {
			t.Fatal("the original message id was copied; it would de-duplicate the dead letter away")
		}
	})

	tests := []struct {
		name       string
		breakDLQ   bool
		failFail   bool // the failure handler cannot record the failure
		action     streams.Action
		wantFailed int32
		wantDLQ    int
	}{
		{name: "a message marked for the DLQ is written there after the failure handler and termed", action: streams.ActionTerm, wantFailed: 1, wantDLQ: 1},
		{name: "when the DLQ cannot be written the message is retried, not lost", breakDLQ: true, action: streams.ActionRetry, wantFailed: 1},
		{name: "when the failure cannot be recorded the message is retried and stays out of the DLQ", failFail: true, action: streams.ActionRetry, wantFailed: 1, wantDLQ: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := streamstest.Start(t)
			if tt.breakDLQ {
				if err := s.JS.DeleteStream(ctx, schemas.StreamDLQ); err != nil {
					t.Fatal(err)
				}
			}
			var failed atomic.Int32
			mw := streams.DeadLetters(streams.DeadLetterConfig{
				Stage: "preprocess", Worker: "test", Pub: streams.JSPublisher{JS: s.JS}, RetryDelay: time.Second, Log: quietLog(),
				OnFailure: func(_ context.Context, m *streams.Msg, err error) error {
					if m.StreamSeq == 7 && err.Error() == "corrupt" {
						failed.Add(1)
					}
					if tt.failFail {
						return errors.New("job store unreachable")
					}
					return nil
				},
			})
			verdicts := []streams.Result{{Err: errors.New("corrupt"), Action: streams.ActionDeadLetter}, {Outputs: []streams.Output{{Subject: "x"}}}}
			res := mw(streams.BatchHandlerFunc(func(context.Context, []*streams.Msg) []streams.Result { return verdicts })).
				Handle(ctx, []*streams.Msg{deliveredMsg(7, 1), deliveredMsg(8, 1)})
			if res[0].Action != tt.action || res[1].Action != streams.ActionNone || len(res[1].Outputs) != 1 {
				t.Fatalf("results %+v; want the first %d and the second untouched", res, tt.action)
			}
			if tt.action == streams.ActionRetry && res[0].Delay != time.Second {
				t.Errorf("retry delay %s; want RetryDelay", res[0].Delay)
			}
			if failed.Load() != tt.wantFailed {
				t.Errorf("failure handler called %d times; want %d", failed.Load(), tt.wantFailed)
			}
			if !tt.breakDLQ && len(dlqMessages(t, s)) != tt.wantDLQ {
				t.Errorf("DLQ holds %d messages; want %d", len(dlqMessages(t, s)), tt.wantDLQ)
			}
		})
	}
}
