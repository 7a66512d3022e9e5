package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// RetryPolicy classifies failures and shapes redelivery.
type RetryPolicy struct {
	// MaxDeliver is the consumer's delivery limit; a transient failure on that delivery
	// is dead-lettered. 0 or less retries for ever (the sink must not lose rows).
	MaxDeliver int
	// BackoffBase and BackoffMax shape the redelivery delay after a transient error:
	// base * 2^(delivered-1), capped (defaults 1s and 30s).
	BackoffBase, BackoffMax time.Duration
}

// Backoff returns the redelivery delay after the given delivery failed.
func (p RetryPolicy) Backoff(delivered int) time.Duration {
	base, most := p.BackoffBase, p.BackoffMax
	if base <= 0 {
		base = time.Second
	}
	if most <= 0 {
		most = 30 * time.Second
	}
	d := base
	for i := 1; i < delivered && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// IsPermanent reports whether err can never succeed on retry: it wraps a
// *schemas.JobError or ErrPermanent.
func IsPermanent(err error) bool {
	var jerr *schemas.JobError
	return errors.As(err, &jerr) || errors.Is(err, ErrPermanent)
}

// Permanent marks err as permanent (errors.Is(err, ErrPermanent)); its text is kept.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error        { return e.error }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Retry classifies each failed message: permanent errors are marked for the DLQ at
// once; transient ones are handed back with exponential backoff, and on the last
// allowed delivery marked for the DLQ with ErrMaxDeliveries. Work cut short by the end
// of ctx (the drain deadline) is handed back at once, without backoff and without a
// retry metric; the server still counts the redelivery towards MaxDeliver.
func Retry(p RetryPolicy, log logrus.FieldLogger) Middleware {
	return func(next Handler) Handler {
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			results := next.Handle(ctx, batch)
			for i := range results {
				res := &results[i]
				if res.Err == nil || res.Action != ActionNone {
					continue
				}
				m := batch[i]
				switch {
				case IsPermanent(res.Err):
					res.Action = ActionDeadLetter
				case ctx.Err() != nil:
					m.Log(log).WithError(res.Err).Info("work interrupted by shutdown; returning the message")
					res.Action = ActionReturn
				case p.MaxDeliver > 0 && m.Delivered >= p.MaxDeliver:
					res.Err = fmt.Errorf("%w (%d): last error: %w", ErrMaxDeliveries, m.Delivered, res.Err)
					res.Action = ActionDeadLetter
				default:
					res.Action, res.Delay = ActionRetry, p.Backoff(m.Delivered)
					m.Log(log).WithError(res.Err).WithField("retry_in", res.Delay.String()).Warn("transient failure; will retry")
				}
			}
			return results
		})
	}
}
