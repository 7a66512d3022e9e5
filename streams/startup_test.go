package streams_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

func TestStartupRetriesWhatAnElectionExplainsAndNothingElse(t *testing.T) {
	fast := streams.Startup{Wait: 2 * time.Second, Attempt: 100 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, Log: silentLog()}
	cases := []struct {
		name      string
		failures  []error // returned by the first tries, then success
		wantTries int
		wantErr   string
	}{
		{"a request with no answer before the leader is elected is retried",
			[]error{context.DeadlineExceeded, nats.ErrNoResponders}, 3, ""},
		{"the cluster's temporarily-unavailable code is retried",
			[]error{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}}, 2, ""},
		{"no suitable peers while nodes join is retried",
			[]error{fmt.Errorf("provision: %w", &jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"})}, 2, ""},
		{"a refused configuration fails at once",
			[]error{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}}, 1, "already in use"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tries := 0
			err := fast.Do(context.Background(), "the test", func(ctx context.Context) error {
				tries++
				if _, ok := ctx.Deadline(); !ok {
					t.Error("a try has no deadline of its own")
				}
				if tries <= len(tc.failures) {
					return tc.failures[tries-1]
				}
				return nil
			})
			if tries != tc.wantTries {
				t.Errorf("tries = %d, want %d", tries, tc.wantTries)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Do: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Do = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestStartupGivesUpAfterItsWaitAndSaysWhatItWaitedFor(t *testing.T) {
	s := streams.Startup{Wait: 300 * time.Millisecond, Attempt: 50 * time.Millisecond, BackoffBase: 10 * time.Millisecond, Log: silentLog()}
	began := time.Now()
	err := s.Do(context.Background(), "provision the topology", func(ctx context.Context) error {
		<-ctx.Done() // a cluster with no leader: no answer
		return ctx.Err()
	})
	if err == nil || !strings.Contains(err.Error(), "provision the topology") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want a deadline error naming what it waited for", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Do waited %s, beyond its 300ms bound", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Do(ctx, "x", func(ctx context.Context) error { return ctx.Err() }); err == nil {
		t.Fatal("Do went on after its context was cancelled")
	}
}
