package streams_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestAPublishWhoseAckNeverComesFailsWithinItsTimeout cuts the connection between the
// publisher and a real server (a proxy stops forwarding; the TCP connection stays
// open, as with a paused node or one that turned JetStream off) and checks that a
// Publish under a caller's context with no deadline fails after the publisher's own
// bound, so its message is redelivered instead of standing still; and that it works
// again once the connection does.
func TestAPublishWhoseAckNeverComesFailsWithinItsTimeout(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	if _, err := s.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "PUBT", Subjects: []string{"pubt.>"}}); err != nil {
		t.Fatal(err)
	}
	px := streamstest.StartProxy(t, strings.TrimPrefix(s.Embedded.ClientURL(), "nats://"))
	nc, err := nats.Connect("nats://" + px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const bound = 300 * time.Millisecond
	pub := streams.JSPublisher{JS: js, Timeout: bound}
	out := streams.Output{Subject: "pubt.a", MsgID: "job:stage", Data: []byte("x")}
	if err := pub.Publish(ctx, out); err != nil {
		t.Fatal(err)
	}
	px.Hold(streamstest.Both)
	began := time.Now()
	err = pub.Publish(ctx, streams.Output{Subject: "pubt.a", MsgID: "job:next", Data: []byte("y")})
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish with the server cut off: %v, want a timeout", err)
	}
	if took > 10*bound {
		t.Fatalf("publish gave up after %s; want about its bound %s", took, bound)
	}
	px.Hold(0)
	pub.Timeout = 10 * time.Second
	if err := pub.Publish(ctx, streams.Output{Subject: "pubt.a", MsgID: "job:next", Data: []byte("y")}); err != nil {
		t.Fatalf("publish once the connection works again: %v", err)
	}
}
