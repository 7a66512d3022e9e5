package streams

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// Msg is one delivered message as a handler sees it, for every consumer the Runner
// drives (stages, sink, webhooks, slot release). Handlers must not ack it: the runner
// does, after the handler's outputs are confirmed by the server.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// Stream is the stream the message was stored in.
	Stream string
	// Tier is the priority tier of the consumer that delivered it; empty for untiered
	// consumers.
	Tier schemas.Tier
	// Delivered counts deliveries, starting at 1.
	Delivered int
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Published is when the message entered the stream; Received - Published is the
	// queue wait.
	Published time.Time
	Received  time.Time
	// JobID and TraceID come from the Studio-Job-Id and traceparent headers (see
	// Tracing); they name the message in logs.
	JobID, TraceID string

	raw jetstream.Msg // nil for messages recovered from the stream for the DLQ
}

// Log returns l with the fields that identify m: stream sequence, attempt, subject,
// tier, and the job and trace ids when known.
func (m *Msg) Log(l logrus.FieldLogger) logrus.FieldLogger {
	f := logrus.Fields{"stream_seq": m.StreamSeq, "attempt": m.Delivered, "subject": m.Subject}
	if m.Tier != "" {
		f["tier"] = m.Tier
	}
	if m.JobID != "" {
		f["job_id"] = m.JobID
	}
	if m.TraceID != "" {
		f["trace_id"] = m.TraceID
	}
	return l.WithFields(f)
}

// Output is a message a handler wants published. MsgID makes the publish idempotent:
// a redelivered input produces the same ids, which the stream de-duplicates.
type Output struct {
	Subject string
	MsgID   string
	Data    []byte
	Header  nats.Header
}

// Action says how the runner settles a message. Handlers leave it zero; the Retry and
// DeadLetters middleware set it from the error.
type Action uint8

// Actions.
const (
	// ActionNone settles by Err: acknowledged when nil, retried after a delay otherwise.
	ActionNone Action = iota
	// ActionRetry hands the message back for redelivery after Result.Delay.
	ActionRetry
	// ActionReturn hands the message back at once: the work was interrupted (shutdown),
	// which is not the message's fault.
	ActionReturn
	// ActionDeadLetter asks DeadLetters to move the message to the DLQ.
	ActionDeadLetter
	// ActionTerm tells the server never to deliver the message again (it is in the DLQ).
	ActionTerm
)

// Result is a handler's verdict on one input message.
type Result struct {
	Outputs []Output
	// Err classifies a failure: an error wrapping *schemas.JobError or ErrPermanent is
	// permanent (DLQ, no retry); any other error is retried with backoff until
	// MaxDeliver (see Retry).
	Err error
	// Action and Delay are set by middleware; handlers leave them zero.
	Action Action
	Delay  time.Duration
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

// BatchHandlerFunc adapts a batch function to Handler.
type BatchHandlerFunc func(ctx context.Context, batch []*Msg) []Result

// Handle calls f.
func (f BatchHandlerFunc) Handle(ctx context.Context, batch []*Msg) []Result { return f(ctx, batch) }

// Middleware wraps a Handler with behaviour every consumer shares (Recover, Timeout,
// Retry, DeadLetters, Observe, Tracing). The Runner installs them all; each works on
// its own too.
type Middleware func(Handler) Handler

// FailureHandler is told about every message that fails for good (permanent error or
// exhausted deliveries) before it goes to the DLQ; a stage marks its job failed and
// publishes its result. An error keeps the message out of the DLQ and redelivers it
// later, so a failure that could not be recorded is tried again rather than lost. It
// must be idempotent: it runs again on that redelivery, and after a failed DLQ write.
type FailureHandler func(ctx context.Context, m *Msg, err error) error

// ErrSuperseded is what a FailureHandler returns (wrapped) when the failed message is
// out of date: its job has already moved past the message's stage or ended, so the
// failure is a stale redelivery's, not the job's. Such a message is acked and dropped:
// no dead letter, nothing failed.
var ErrSuperseded = errors.New("message superseded: its job has moved on")

// Publisher publishes side messages (telemetry, failure results) and waits for the
// server to confirm them.
type Publisher interface {
	Publish(ctx context.Context, outs ...Output) error
}

// ErrPermanent marks an error that no retry can fix: the message goes to the DLQ at
// once. Wrap it (fmt.Errorf("...: %w", ErrPermanent)) or use Permanent. Errors wrapping
// *schemas.JobError are permanent too.
var ErrPermanent = errors.New("permanent failure")

// ErrMaxDeliveries is the cause given to the FailureHandler and the DLQ when a message
// exhausted its deliveries.
var ErrMaxDeliveries = errors.New("message was delivered the maximum number of times without success")
