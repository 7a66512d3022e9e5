package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// Runner's doc says it "drains within a bound on shutdown" (DrainTimeout). A handler
// that does not watch its context (a cgo inference call, a stuck driver) keeps Run
// from returning at all: after the drain deadline it only cancels the work context and
// then waits for the workers without a bound.
func TestRunReturnsSoonAfterDrainTimeoutEvenIfAHandlerIgnoresItsContext(t *testing.T) {
	s := streamstest.Start(t)
	publishTelemetry(t, s, 1)
	started := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r, err := streams.Engine{JS: s.JS}.NewRunner(context.Background(), streams.BatchHandlerFunc(func(_ context.Context, b []*streams.Msg) []streams.Result {
		close(started)
		<-release // ignores ctx
		return make([]streams.Result, len(b))
	}), streams.RunnerConfig{Stage: "sink", Worker: "test", Log: quietLog(), Spec: telemetrySpec(30 * time.Second),
		PullExpiry: 200 * time.Millisecond, DrainTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the message never reached the handler")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Error("Run did not return within 3s of shutdown with DrainTimeout 200ms")
	}
}
