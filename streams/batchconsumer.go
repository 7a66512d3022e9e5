package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
)

// BatchSpec describes one durable pull consumer that is read in batches, such as the
// ClickHouse sink's. Unlike a stage's ConsumerSpec it has no tiers: analytics treats
// every tier alike, and the reader, not a Runner, owns the acks.
type BatchSpec struct {
	Stream  string
	Durable string
	// FilterSubjects limits the consumer to these subjects; empty reads the whole stream.
	FilterSubjects []string
	// AckWait bounds how long a delivered message may stay unacknowledged before the
	// server redelivers it; readers that hold messages longer send InProgress
	// (default 60s).
	AckWait time.Duration
	// MaxAckPending bounds the messages held unacknowledged. It must exceed the largest
	// batch the reader asks for, or a batch can never fill (default 2048).
	MaxAckPending int
	// MaxDeliver bounds deliveries; 0 or -1 never gives up, which suits a sink that must
	// not lose rows while its database is down (default -1).
	MaxDeliver int
	// DLQStage names the dead-letter subject studio.dlq.<DLQStage> used by DeadLetter.
	DLQStage schemas.Stage
	// Worker identifies this process in the DLQ headers.
	Worker string
}

// BatchOpener opens batch consumers on one JetStream connection. Packages that must not
// import nats.go (the sink) receive one from the process wiring. Safe for concurrent use.
type BatchOpener struct {
	JS jetstream.JetStream
}

// BatchConsumer fetches batches from one durable pull consumer and dead-letters poison
// messages. Fetch must not be called concurrently; the returned deliveries may be
// settled from any goroutine.
type BatchConsumer struct {
	spec BatchSpec
	js   jetstream.JetStream
	cons jetstream.Consumer
	pub  JSPublisher
}

// Delivery is one fetched message. Settle it exactly once with Ack, Nak or Term (or
// DeadLetter, which terms it); InProgress may be called any number of times before.
type Delivery struct {
	Subject string
	Data    []byte
	Header  map[string][]string
	// Delivered counts deliveries, starting at 1.
	Delivered int
	// StreamSeq is the message's sequence in its stream.
	StreamSeq uint64
	// Published is when the message entered the stream.
	Published time.Time

	raw jetstream.Msg
}

// NewBatchOpener returns an opener on nc's JetStream, for processes that dial NATS
// themselves (streams.Dial).
func NewBatchOpener(nc *nats.Conn) (BatchOpener, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return BatchOpener{}, fmt.Errorf("streams: jetstream: %w", err)
	}
	return BatchOpener{JS: js}, nil
}

// Open creates or updates the durable consumer and returns a reader for it.
func (o BatchOpener) Open(ctx context.Context, spec BatchSpec) (*BatchConsumer, error) {
	if o.JS == nil {
		return nil, errors.New("streams: batch opener has no JetStream connection")
	}
	if spec.Stream == "" || spec.Durable == "" {
		return nil, errors.New("streams: batch consumer needs a stream and a durable name")
	}
	if spec.AckWait <= 0 {
		spec.AckWait = 60 * time.Second
	}
	if spec.MaxAckPending <= 0 {
		spec.MaxAckPending = 2048
	}
	if spec.MaxDeliver == 0 {
		spec.MaxDeliver = -1
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       spec.Durable,
		Description:   "batch reader " + spec.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		MaxAckPending: spec.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	switch len(spec.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = spec.FilterSubjects[0]
	default:
		cfg.FilterSubjects = spec.FilterSubjects
	}
	cons, err := o.JS.CreateOrUpdateConsumer(ctx, spec.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("streams: ensure consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	return &BatchConsumer{spec: spec, js: o.JS, cons: cons, pub: JSPublisher{JS: o.JS}}, nil
}

// Spec returns the consumer's settings after defaults.
func (c *BatchConsumer) Spec() BatchSpec { return c.spec }

// Fetch returns up to n messages: it returns as soon as n have arrived, or with what
// arrived (possibly nothing) once wait has passed. It blocks for about wait at most.
//
// The pull request expires on the server after wait and Fetch reads until the server
// says so, rather than abandoning the request when a client-side deadline fires: a
// message the server sends just as a client deadline passes would go to a closed inbox
// and come back only after AckWait. For the same reason ctx is checked only before the
// pull; keep wait short (seconds) so shutdown stays prompt.
func (c *BatchConsumer) Fetch(ctx context.Context, n int, wait time.Duration) ([]*Delivery, error) {
	if n < 1 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	batch, err := c.cons.Fetch(n, jetstream.FetchMaxWait(max(wait, 10*time.Millisecond)))
	if err != nil {
		return nil, fmt.Errorf("streams: fetch from %s: %w", c.spec.Durable, err)
	}
	out := make([]*Delivery, 0, min(n, 1024))
	for raw := range batch.Messages() {
		d := &Delivery{Subject: raw.Subject(), Data: raw.Data(), Header: raw.Headers(), raw: raw}
		if md, err := raw.Metadata(); err == nil {
			d.Delivered = int(md.NumDelivered)
			d.StreamSeq = md.Sequence.Stream
			d.Published = md.Timestamp
		}
		out = append(out, d)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return out, fmt.Errorf("streams: fetch from %s: %w", c.spec.Durable, err)
	}
	return out, nil
}

// Pending returns how many messages wait for this consumer or are held unacknowledged.
func (c *BatchConsumer) Pending(ctx context.Context) (int, error) {
	info, err := c.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("streams: consumer %s info: %w", c.spec.Durable, err)
	}
	return int(info.NumPending) + info.NumAckPending, nil
}

// DeadLetter copies d to studio.dlq.<DLQStage> with the reason, stage, attempts, stream,
// sequence, subject and worker headers the stage runner writes, then terms d so it is
// never delivered again. The DLQ publish is de-duplicated by stream and sequence, so a
// retry after a failed Term does not produce a second dead letter.
func (c *BatchConsumer) DeadLetter(ctx context.Context, d *Delivery, reason error) error {
	if c.spec.DLQStage == "" {
		return errors.New("streams: batch consumer has no DLQ stage")
	}
	h := nats.Header{}
	for k, v := range d.Header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDLQReason, truncate(reason.Error(), 1000))
	h.Set(HeaderDLQStage, string(c.spec.DLQStage))
	h.Set(HeaderDLQAttempts, fmt.Sprint(d.Delivered))
	h.Set(HeaderDLQStream, c.spec.Stream)
	h.Set(HeaderDLQSeq, fmt.Sprint(d.StreamSeq))
	h.Set(HeaderDLQSubject, d.Subject)
	h.Set(HeaderDLQWorker, c.spec.Worker)
	if err := c.pub.Publish(ctx, Output{
		Subject: schemas.DLQSubject(c.spec.DLQStage),
		MsgID:   fmt.Sprintf("dlq-%s-%d", c.spec.Stream, d.StreamSeq),
		Data:    d.Data,
		Header:  h,
	}); err != nil {
		return err
	}
	if err := d.Term(truncate(reason.Error(), 200)); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		return err
	}
	return nil
}

// Ack acknowledges d. It does not wait for the server: an ack that is lost makes the
// server redeliver d, so callers must tolerate a second delivery (the sink does).
func (d *Delivery) Ack() error { return d.raw.Ack() }

// Nak asks for redelivery after delay (at once when delay is 0).
func (d *Delivery) Nak(delay time.Duration) error {
	if delay <= 0 {
		return d.raw.Nak()
	}
	return d.raw.NakWithDelay(delay)
}

// Term tells the server never to deliver d again.
func (d *Delivery) Term(reason string) error { return d.raw.TermWithReason(reason) }

// InProgress resets d's AckWait timer, for messages held while a batch is retried.
func (d *Delivery) InProgress() error { return d.raw.InProgress() }
