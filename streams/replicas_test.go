package streams_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams/streamstest"
)

// replicas returns n independent JetStream clients of s, each on its own connection,
// standing in for n ingest replicas.
func replicas(t *testing.T, s *streamstest.Server, n int) []jetstream.JetStream {
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
