package streams_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestEveryStreamHasASizeBoundAndTheDiscardPolicyOfItsRole(t *testing.T) {
	pipeline := map[string]bool{}
	for _, p := range processors.Streams() {
		pipeline[p.Name] = true
	}
	for _, c := range streams.DefaultTopology(1).StreamConfigs(processors.Streams()) {
		t.Run(c.Name, func(t *testing.T) {
			if c.MaxBytes <= 0 {
				t.Fatalf("stream %s has no MaxBytes bound (%d)", c.Name, c.MaxBytes)
			}
			want := jetstream.DiscardOld // telemetry, audit, results, feedback, DLQ: drop oldest
			if pipeline[c.Name] {
				want = jetstream.DiscardNew // work: refuse new, never drop accepted work
			}
			if c.Discard != want {
				t.Fatalf("stream %s discards %v, want %v", c.Name, c.Discard, want)
			}
		})
	}
	if got := streams.DefaultTopology(1).WithMaxBytes(4096).StreamConfigs(processors.Streams()); got[0].MaxBytes != 4096 || got[len(got)-1].MaxBytes != 4096 {
		t.Fatalf("WithMaxBytes(4096) left bounds %d and %d", got[0].MaxBytes, got[len(got)-1].MaxBytes)
	}
}

func TestAFullStreamRefusesWorkAndDropsOldestTelemetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := streamstest.Start(t)
	const bound = 16 << 10
	topo := streams.DefaultTopology(1)
	topo.WorkMaxBytes, topo.TelemetryMaxBytes = bound, bound
	if err := topo.Provision(ctx, s.JS, processors.Streams()); err != nil {
		t.Fatalf("provision tiny bounds over the defaults: %v", err)
	}
	pub := streams.JSPublisher{JS: s.JS}
	payload := bytes.Repeat([]byte("x"), 1024)

	t.Run("a full request stream refuses the next job and keeps the accepted ones", func(t *testing.T) {
		subject := schemas.RequestSubject(schemas.TierNormal, schemas.TaskRemoveBackground)
		var err error
		accepted := 0
		for i := 0; i < 100 && err == nil; i++ {
			if err = pub.Publish(ctx, streams.Output{Subject: subject, MsgID: fmt.Sprint("req-", i), Data: payload}); err == nil {
				accepted++
			}
		}
		if err == nil {
			t.Fatalf("100 KiB went into a %d byte request stream", bound)
		}
		if !streams.IsFull(err) {
			t.Fatalf("the refusal is not recognised as a full stream: %v", err)
		}
		info := streamInfo(t, ctx, s.JS, schemas.StreamRequests)
		if info.State.FirstSeq != 1 || int(info.State.Msgs) != accepted || info.State.Bytes > bound {
			t.Fatalf("request stream: first %d, %d messages for %d accepted, %d bytes (bound %d)", info.State.FirstSeq, info.State.Msgs, accepted, info.State.Bytes, bound)
		}
	})

	t.Run("telemetry over its bound keeps accepting and drops the oldest", func(t *testing.T) {
		const n = 100
		for i := range n {
			if err := pub.Publish(ctx, streams.Output{Subject: "studio.telemetry.test", Data: payload}); err != nil {
				t.Fatalf("telemetry message %d refused: %v", i, err)
			}
		}
		info := streamInfo(t, ctx, s.JS, schemas.StreamTelemetry)
		if info.State.LastSeq != n || info.State.FirstSeq <= 1 || info.State.Bytes > bound {
			t.Fatalf("telemetry: first %d, last %d, %d bytes (bound %d); want the newest kept within the bound", info.State.FirstSeq, info.State.LastSeq, info.State.Bytes, bound)
		}
	})

	if streams.IsFull(fmt.Errorf("wrapped: %w", context.DeadlineExceeded)) {
		t.Fatal("a timeout is reported as a full stream")
	}
}

func streamInfo(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// Streams provisioned by a release without bounds (unbounded, DiscardOld) take their
// bound and discard policy on the next start.
func TestUnboundedStreamsOfAnEarlierReleaseTakeTheirBounds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := streamstest.Start(t)
	want := streams.DefaultTopology(1).StreamConfigs(processors.Streams())
	for _, c := range want {
		c.MaxBytes, c.Discard = -1, jetstream.DiscardOld
		if _, err := s.JS.UpdateStream(ctx, c); err != nil {
			t.Fatalf("unbound %s: %v", c.Name, err)
		}
	}
	if err := streams.DefaultTopology(1).Provision(ctx, s.JS, processors.Streams()); err != nil {
		t.Fatalf("provision over unbounded streams: %v", err)
	}
	for _, c := range want {
		got := streamInfo(t, ctx, s.JS, c.Name).Config
		if got.MaxBytes != c.MaxBytes || got.Discard != c.Discard {
			t.Errorf("stream %s: MaxBytes %d, discard %v; want %d, %v", c.Name, got.MaxBytes, got.Discard, c.MaxBytes, c.Discard)
		}
	}
}
