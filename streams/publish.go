package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JSPublisher publishes outputs to JetStream asynchronously and waits for every PubAck.
// Safe for concurrent use.
type JSPublisher struct {
	JS jetstream.JetStream
	// Timeout bounds the wait for the acknowledgements of one Publish call
	// (PublishTimeout when 0).
	Timeout time.Duration
}

// PublishTimeout bounds the wait for a publish's acknowledgement. Without a bound of
// its own a stage waited for its caller's deadline (minutes, or none) when the ack
// never came: the server its connection is on turned JetStream off (its disk filled)
// or a stream lost its leader mid-publish. The runner kept the message alive with
// heartbeats meanwhile, so the job stood still for minutes (found by cmd/studio
// TestChaos disk-full). A publish not confirmed in time fails its message, which is
// redelivered; the second publish carries the same message id and the stream keeps
// one copy.
const PublishTimeout = 10 * time.Second

var _ Publisher = JSPublisher{}

// Publish sends all outputs, then waits for each acknowledgement. It returns the first
// failure; outputs that did reach the stream are de-duplicated by MsgID when the caller
// retries.
func (p JSPublisher) Publish(ctx context.Context, outs ...Output) error {
	futures := make([]jetstream.PubAckFuture, 0, len(outs))
	for _, o := range outs {
		m := &nats.Msg{Subject: o.Subject, Data: o.Data, Header: o.Header}
		var opts []jetstream.PublishOpt
		if o.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(o.MsgID))
		}
		f, err := p.JS.PublishMsgAsync(m, opts...)
		if err != nil {
			return fmt.Errorf("streams: publish to %s: %w", o.Subject, err)
		}
		futures = append(futures, f)
	}
	wait := p.Timeout
	if wait <= 0 {
		wait = PublishTimeout
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("streams: publish to %s not confirmed: %w", outs[i].Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("streams: waiting for publish to %s: %w", outs[i].Subject, ctx.Err())
		case <-timer.C:
			return fmt.Errorf("streams: publish to %s not confirmed within %s (a stream electing its leader, or the server lost JetStream); it is retried: %w",
				outs[i].Subject, wait, context.DeadlineExceeded)
		}
	}
	return nil
}
