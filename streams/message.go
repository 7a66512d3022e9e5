package streams

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
)

// Msg is one delivered message as a handler sees it. Handlers must not ack it: the
// runner does, after the handler's outputs are confirmed by the server.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// Tier is the priority tier of the consumer that delivered it.
	Tier schemas.Tier
	// Delivered counts deliveries, starting at 1.
	Delivered int
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Published is when the message entered the stream; Received - Published is the
	// queue wait.
	Published time.Time
	Received  time.Time

	raw jetstream.Msg // nil for messages recovered from the stream for the DLQ
}

// Output is a message a handler wants published. MsgID makes the publish idempotent:
// a redelivered input produces the same ids, which the stream de-duplicates.
type Output struct {
	Subject string
	MsgID   string
	Data    []byte
	Header  nats.Header
}

// Result is a handler's verdict on one input message.
type Result struct {
	Outputs []Output
	// Err classifies a failure: an error wrapping *schemas.JobError is permanent (DLQ,
	// no retry); any other error is retried with backoff until MaxDeliver.
	Err error
}

// Handler processes a batch of messages and returns one Result per message, in order.
// It may be called from several goroutines at once.
type Handler interface {
	Handle(ctx context.Context, batch []*Msg) []Result
}

// HandlerFunc adapts a single-message function to Handler.
type HandlerFunc func(ctx context.Context, m *Msg) ([]Output, error)

// Handle calls f for each message in turn.
func (f HandlerFunc) Handle(ctx context.Context, batch []*Msg) []Result {
	out := make([]Result, len(batch))
	for i, m := range batch {
		outs, err := f(ctx, m)
		out[i] = Result{Outputs: outs, Err: err}
	}
	return out
}

// Publisher publishes side messages (telemetry, failure results) and waits for the
// server to confirm them.
type Publisher interface {
	Publish(ctx context.Context, outs ...Output) error
}
