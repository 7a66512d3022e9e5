package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
)

// Startup retries the calls a process makes at start (waiting for JetStream,
// provisioning streams and buckets, creating consumers) while a cluster cannot answer
// them yet: all nodes and processes started at once spend their first seconds electing
// a meta leader, and every JetStream request made before there is one times out. A
// failure that no election explains (a bad configuration, a refused credential) is
// returned at once. The zero value is ready to use. Safe for concurrent use.
type Startup struct {
	// Wait bounds the whole wait, all attempts together (default 2 minutes); the
	// caller's context may end it sooner.
	Wait time.Duration
	// Attempt bounds one try (default 10 s): a request to a cluster without a leader
	// gets no answer, so each try needs its own deadline.
	Attempt time.Duration
	// BackoffBase and BackoffMax shape the pause between tries: base * 2^(try-1),
	// capped (defaults 250 ms and 5 s).
	BackoffBase, BackoffMax time.Duration
	// Log hears each retry: what is awaited, the last error and the next pause.
	Log logrus.FieldLogger
}

func (s Startup) withDefaults() Startup {
	if s.Wait <= 0 {
		s.Wait = 2 * time.Minute
	}
	if s.Attempt <= 0 {
		s.Attempt = 10 * time.Second
	}
	if s.BackoffBase <= 0 {
		s.BackoffBase = 250 * time.Millisecond
	}
	if s.BackoffMax <= 0 {
		s.BackoffMax = 5 * time.Second
	}
	if s.Log == nil {
		s.Log = logrus.StandardLogger()
	}
	return s
}

// Do runs op, giving each try its own Attempt deadline, until it succeeds, fails with
// an error that is not transient (IsTransientStartup), Wait passes or ctx ends. what
// names the awaited thing in logs and in the error ("provision the topology"). Do
// blocks for at most Wait.
func (s Startup) Do(ctx context.Context, what string, op func(ctx context.Context) error) error {
	s = s.withDefaults()
	wait, cancel := context.WithTimeout(ctx, s.Wait)
	defer cancel()
	began := time.Now()
	for try := 1; ; try++ {
		actx, acancel := context.WithTimeout(wait, s.Attempt)
		err := op(actx)
		acancel()
		if err == nil {
			if try > 1 {
				s.Log.WithFields(logrus.Fields{"waited_for": what, "tries": try, "waited": time.Since(began).Round(time.Millisecond).String()}).Info("JetStream answered; going on")
			}
			return nil
		}
		if !IsTransientStartup(err) {
			return err
		}
		pause := RetryPolicy{BackoffBase: s.BackoffBase, BackoffMax: s.BackoffMax}.Backoff(try)
		if ctx.Err() != nil {
			return fmt.Errorf("streams: %s: gave up when the process stopped: %w", what, err)
		}
		if wait.Err() != nil || time.Since(began)+pause >= s.Wait {
			return fmt.Errorf("streams: %s: JetStream did not answer within %s (is a majority of the cluster up, with a meta leader? `nats server report jetstream` shows it): %w", what, s.Wait, err)
		}
		s.Log.WithError(err).WithFields(logrus.Fields{"waiting_for": what, "try": try, "retry_in": pause.String()}).Warn("JetStream not ready (a cluster electing its leader?); retrying")
		sleepCtx(wait, pause)
	}
}

// AwaitJetStream blocks until JetStream answers an account-info request through js:
// on a cluster, until it has a meta leader. It is the first thing a process waits for.
func (s Startup) AwaitJetStream(ctx context.Context, js jetstream.JetStream) error {
	s = s.withDefaults()
	// A request made before there is a leader gets no answer: ask with a short deadline.
	s.Attempt = min(s.Attempt, 2*time.Second)
	return s.Do(ctx, "a JetStream meta leader", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// JetStream error codes that a cluster gives while it elects leaders or its peers join.
const (
	errCodeNoPeers          jetstream.ErrorCode = 10005 // no suitable peers for placement (yet)
	errCodeNotAssigned      jetstream.ErrorCode = 10007
	errCodeNotAvailable     jetstream.ErrorCode = 10008 // JetStream system temporarily unavailable
	errCodeNotLeader        jetstream.ErrorCode = 10009
	errCodePeerNotMember    jetstream.ErrorCode = 10040
	errCodeStreamOffline    jetstream.ErrorCode = 10118
	errCodeConsumerOffline  jetstream.ErrorCode = 10119
	errCodeConsumerCreateF  jetstream.ErrorCode = 10012 // wraps a placement or leader error
	errCodeJetStreamOffline jetstream.ErrorCode = 10076 // "JetStream not enabled": no meta layer yet
)

// IsTransientStartup reports whether err is one a JetStream cluster gives while it
// starts or elects a leader: a request that timed out or found no responder, a
// connection still (re)connecting, or one of the server's "not available, not leader,
// no peers yet, offline" codes. Startup retries these and nothing else.
func IsTransientStartup(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeNoPeers, errCodeNotAssigned, errCodeNotAvailable, errCodeNotLeader, errCodePeerNotMember,
			errCodeStreamOffline, errCodeConsumerOffline, errCodeConsumerCreateF, errCodeJetStreamOffline:
			return true
		}
		return apiErr.Code == 503 || apiErr.Code == 408
	}
	return false
}
