package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// DLQ headers, the same on every dead letter whichever consumer wrote it.
const (
	HeaderDLQReason   = "Studio-Dlq-Reason"
	HeaderDLQStage    = "Studio-Dlq-Stage"
	HeaderDLQAttempts = "Studio-Dlq-Attempts"
	HeaderDLQStream   = "Studio-Dlq-Stream"
	HeaderDLQSeq      = "Studio-Dlq-Seq"
	HeaderDLQSubject  = "Studio-Dlq-Subject"
	HeaderDLQWorker   = "Studio-Dlq-Worker"
)

// DeadLetter copies m to studio.dlq.<stage> with its headers plus the reason, stage,
// attempts, stream, sequence, subject and worker headers, and waits for the server to
// confirm it. The publish is de-duplicated by stream and sequence, so writing the same
// message twice (a lost Term, the advisory racing the runner) keeps one dead letter.
// It is the only code that writes to the DLQ.
func DeadLetter(ctx context.Context, pub Publisher, m *Msg, stage schemas.Stage, worker string, reason error) error {
	h := make(nats.Header, len(m.Header)+7)
	for k, v := range m.Header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDLQReason, truncate(reason.Error(), 1000))
	h.Set(HeaderDLQStage, string(stage))
	h.Set(HeaderDLQAttempts, fmt.Sprint(m.Delivered))
	h.Set(HeaderDLQStream, m.Stream)
	h.Set(HeaderDLQSeq, fmt.Sprint(m.StreamSeq))
	h.Set(HeaderDLQSubject, m.Subject)
	h.Set(HeaderDLQWorker, worker)
	if err := pub.Publish(ctx, Output{
		Subject: schemas.DLQSubject(stage),
		MsgID:   fmt.Sprintf("dlq-%s-%d", m.Stream, m.StreamSeq),
		Data:    m.Data,
		Header:  h,
	}); err != nil {
		return fmt.Errorf("streams: dead-letter %s seq %d: %w", m.Stream, m.StreamSeq, err)
	}
	return nil
}

// DeadLetterConfig configures DeadLetters.
type DeadLetterConfig struct {
	// Stage names the dead-letter subject studio.dlq.<Stage>.
	Stage schemas.Stage
	// Worker identifies this process in the DLQ headers.
	Worker string
	Pub    Publisher
	// OnFailure, when set, is told about each message before it is dead-lettered.
	OnFailure FailureHandler
	// RetryDelay is how long a message waits for redelivery when the DLQ write failed
	// (default 5s).
	RetryDelay time.Duration
	Log        logrus.FieldLogger
}

// send tells OnFailure and writes the dead letter; the max-deliveries advisory uses it
// too. When OnFailure says the message is superseded (ErrSuperseded) nothing is written
// and that error is returned.
func (c *DeadLetterConfig) send(ctx context.Context, m *Msg, reason error) error {
	if c.OnFailure != nil {
		if err := c.OnFailure(ctx, m, reason); err != nil {
			if errors.Is(err, ErrSuperseded) {
				return err
			}
			return fmt.Errorf("record the failure before dead-lettering: %w", err)
		}
	}
	return DeadLetter(ctx, c.Pub, m, c.Stage, c.Worker, reason)
}

// DeadLetters moves every message marked ActionDeadLetter (see Retry) to the DLQ, after
// telling OnFailure, and marks it ActionTerm. When the DLQ write fails the message is
// retried after RetryDelay instead, so nothing is lost.
func DeadLetters(c DeadLetterConfig) Middleware {
	if c.RetryDelay <= 0 {
		c.RetryDelay = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	return func(next Handler) Handler {
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			results := next.Handle(ctx, batch)
			for i := range results {
				res := &results[i]
				if res.Action != ActionDeadLetter {
					continue
				}
				m := batch[i]
				log := m.Log(c.Log).WithError(res.Err)
				if errors.Is(res.Err, ErrMaxDeliveries) {
					log.Warn("transient failure on the last allowed delivery; sending to the DLQ")
				} else {
					log.Warn("permanent failure; sending to the DLQ")
				}
				// The dead letter is written even during shutdown: the verdict is final.
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				err := c.send(dctx, m, res.Err)
				cancel()
				if errors.Is(err, ErrSuperseded) {
					m.Log(c.Log).WithField("cause", res.Err.Error()).Info("failed message is superseded (its job moved on); acking it and dropping it")
					res.Action, res.Err = ActionNone, nil
					continue
				}
				if err != nil {
					log.WithField("dlq_error", err.Error()).Error("could not write to the DLQ; the message will be redelivered")
					res.Action, res.Delay = ActionRetry, c.RetryDelay
					continue
				}
				res.Action = ActionTerm
			}
			return results
		})
	}
}
