package streams

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JSPublisher publishes outputs to JetStream asynchronously and waits for every PubAck.
// Safe for concurrent use.
type JSPublisher struct {
	JS jetstream.JetStream
}

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
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("streams: publish to %s not confirmed: %w", outs[i].Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("streams: waiting for publish to %s: %w", outs[i].Subject, ctx.Err())
		}
	}
	return nil
}
