// Package streamstest starts a real embedded JetStream server for tests.
package streamstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/streams"
)

// Server is a provisioned embedded server with one client connection.
type Server struct {
	Embedded *streams.Embedded
	NC       *nats.Conn
	JS       jetstream.JetStream
	DataDir  string
}

// Start runs an embedded server on a random loopback port with file storage in a
// temporary directory, provisions the topology (the pipeline streams of
// processors.Stages included) and shuts everything down at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: dir, Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(e.Shutdown)
	nc, err := e.Connect("test")
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topology.Provision(ctx, js, streams.DefaultTopology(1)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return &Server{Embedded: e, NC: nc, JS: js, DataDir: dir}
}

// Eventually polls cond every 20ms until it is true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within "+timeout.String()+": "+msg, args...)
}

// Replicas returns n independent JetStream clients of s, each on its own connection,
// standing in for n replicas of a process (the first is s.JS).
func (s *Server) Replicas(t testing.TB, n int) []jetstream.JetStream {
	t.Helper()
	out := []jetstream.JetStream{s.JS}
	for len(out) < n {
		nc, err := s.Embedded.Connect("replica")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, js)
	}
	return out
}
