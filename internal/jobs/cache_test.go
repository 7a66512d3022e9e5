package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestACacheWriteCutOffFromItsServerFailsWithinCallTimeout cuts the connection to a
// real server (a proxy holds every byte, as a network partition does; the TCP
// connection stays open) and checks that a cache write under the store stage's context
// (a deadline of minutes) fails after jobs.CallTimeout, so that the stage retries its
// message instead of running into its own deadline, which fails the job; and that
// writing and reading work again once the connection does.
func TestACacheWriteCutOffFromItsServerFailsWithinCallTimeout(t *testing.T) {
	s := streamstest.Start(t)
	px := streamstest.StartProxy(t, strings.TrimPrefix(s.Embedded.ClientURL(), "nats://"))
	nc, err := nats.Connect("nats://"+px.Addr(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a stage's deadline
	defer cancel()
	cache, err := jobs.OpenCache(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	entry := jobs.CacheEntry{JobID: "01job", User: "u", Stored: time.Now().UTC()}
	px.Hold(streamstest.Both)
	began := time.Now()
	err = cache.Put(ctx, "acme.k", entry)
	took := time.Since(began)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cache put with the server cut off: %v, want a timeout", err)
	}
	if took > jobs.CallTimeout+5*time.Second {
		t.Fatalf("cache put gave up after %s; want about jobs.CallTimeout (%s)", took, jobs.CallTimeout)
	}
	px.Hold(0)
	if err := cache.Put(ctx, "acme.k", entry); err != nil {
		t.Fatalf("cache put once the connection works again: %v", err)
	}
	got, ok, err := cache.Get(ctx, "acme.k")
	if err != nil || !ok || got.JobID != entry.JobID {
		t.Fatalf("cache get once the connection works again: %+v %v %v", got, ok, err)
	}
}
