package erasure

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// Defaults of WatchRequests.
const (
	// appliedPoll is how often the sink's progress is read while a request waits.
	appliedPoll = time.Second
	// appliedSettle is waited after the sink acknowledged a request: its deletes are
	// ClickHouse mutations, which rewrite the parts in the background (seconds).
	appliedSettle = 5 * time.Second
	// appliedMax bounds the wait for a sink that does not catch up (stopped, or far
	// behind); the caches then keep results again, and a warning says why.
	appliedMax = 10 * time.Minute
)

// WatchRequests tells a process that serves analytics results from memory about
// erasures: for every erasure request published from now on, by any process, it calls
// hold, and calls the release that hold returned once the analytics sink has applied
// the request (its durable consumer sinkConsumer on the AUDIT stream acknowledged it,
// plus a few seconds for the store's background delete), or after 10 minutes. Ingest
// holds its business report and SQL result caches with it (studio.Caches.Hold). It
// blocks until ctx ends and returns nil then.
func WatchRequests(ctx context.Context, js jetstream.JetStream, sinkConsumer string, hold func() (release func()), log logrus.FieldLogger) error {
	s, err := js.Stream(ctx, schemas.StreamAudit)
	if err != nil {
		return fmt.Errorf("erasure: watch erasure requests: %w", err)
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.SubjectErasure}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("erasure: watch erasure requests: %w", err)
	}
	for ctx.Err() == nil {
		batch, err := c.Fetch(16, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			if ctx.Err() == nil {
				log.WithError(err).Warn("erasure: reading erasure requests failed; retrying")
				sleepCtx(ctx, time.Second)
			}
			continue
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			release := hold()
			go func(seq uint64) {
				defer release()
				waitApplied(ctx, s, sinkConsumer, seq, log)
			}(meta.Sequence.Stream)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
			log.WithError(err).Warn("erasure: reading erasure requests failed; retrying")
			sleepCtx(ctx, time.Second)
		}
	}
	return nil
}

// waitApplied returns once the sink's consumer acknowledged the message at seq (and
// its deletes had time to run), after appliedMax, or when ctx ends.
func waitApplied(ctx context.Context, s jetstream.Stream, consumer string, seq uint64, log logrus.FieldLogger) {
	deadline := time.Now().Add(appliedMax)
	for time.Now().Before(deadline) {
		c, err := s.Consumer(ctx, consumer)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil && info.AckFloor.Stream >= seq {
				sleepCtx(ctx, appliedSettle)
				return
			}
		}
		if !sleepCtx(ctx, appliedPoll) {
			return
		}
	}
	log.WithField("consumer", consumer).Warn("erasure: the analytics sink has not applied an erasure request within 10 minutes; cached analytics results are kept again, and may show the user's rows until it does")
}

// sleepCtx waits d or until ctx ends; it reports whether the full wait passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
