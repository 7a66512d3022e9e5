package streams_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestTwoSweepersRunOneAtATimeAndTheSurvivorTakesOver runs the same singleton task
// ("sweeper") under a lease from two processes, each on its own connection: only one
// runs it at a time; when the holder dies (its connection gone, no release) the other
// takes over within the lease's term; when a holder stops cleanly it releases the lease
// and the other takes over at once.
func TestTwoSweepersRunOneAtATimeAndTheSurvivorTakesOver(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	const term = 1500 * time.Millisecond
	if _, err := streams.ProvisionKV(ctx, s.JS, jetstream.KeyValueConfig{Bucket: "leases_test", TTL: term, History: 1}); err != nil {
		t.Fatal(err)
	}
	var running atomic.Int32 // sweepers running now
	var overlap atomic.Bool
	var mu sync.Mutex
	var turns []string // who took the lease, in order
	type sweeper struct {
		name   string
		cancel context.CancelFunc
		done   chan error
		close  func()
	}
	start := func(name string) *sweeper {
		nc, err := s.Embedded.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := js.KeyValue(ctx, "leases_test")
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		sw := &sweeper{name: name, cancel: cancel, done: make(chan error, 1), close: nc.Close}
		l := &streams.Lease{KV: kv, Name: "job-deadlines", Holder: name, Log: silentLog()}
		go func() {
			sw.done <- l.Run(sctx, func(wctx context.Context) error {
				if running.Add(1) > 1 {
					overlap.Store(true)
				}
				mu.Lock()
				turns = append(turns, name)
				mu.Unlock()
				<-wctx.Done()
				running.Add(-1)
				return nil
			})
		}()
		t.Cleanup(func() { cancel(); <-sw.done })
		return sw
	}
	holder := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(turns) == 0 {
			return ""
		}
		return turns[len(turns)-1]
	}
	a, b := start("a"), start("b")
	streamstest.Eventually(t, 5*time.Second, func() bool { return running.Load() == 1 }, "no sweeper took the lease")
	time.Sleep(2 * term) // renewals keep it with one holder; the other waits
	if overlap.Load() || running.Load() != 1 {
		t.Fatalf("%d sweepers ran at once", running.Load())
	}
	first := holder()
	dead, survivor := a, b
	if first == "b" {
		dead, survivor = b, a
	}

	// The holder dies: its connection goes, nothing is released.
	diedAt := time.Now()
	dead.close()
	streamstest.Eventually(t, 3*term, func() bool { return holder() == survivor.name }, "%s did not take over from the dead %s", survivor.name, dead.name)
	t.Logf("%s took over %s after %s died (term %s)", survivor.name, time.Since(diedAt).Round(10*time.Millisecond), dead.name, term)
	dead.cancel()
	if err := <-dead.done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("the dead sweeper's Run returned %v", err)
	}
	dead.done <- nil // for the cleanup
	if overlap.Load() {
		t.Fatal("two sweepers ran at once around the takeover")
	}

	// A clean stop releases the lease: a newcomer takes it at once, well within a term.
	c := start("c")
	stoppedAt := time.Now()
	survivor.cancel()
	streamstest.Eventually(t, term, func() bool { return holder() == c.name }, "the released lease was not taken by c")
	t.Logf("c took the released lease after %s", time.Since(stoppedAt).Round(10*time.Millisecond))
	if overlap.Load() {
		t.Fatal("two sweepers ran at once")
	}
}
