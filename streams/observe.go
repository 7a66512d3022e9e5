package streams

import (
	"context"
	"time"
)

// Outcomes passed to Observer.Handled.
const (
	OutcomeOK         = "ok"
	OutcomeRetry      = "retry"
	OutcomeReturned   = "returned"
	OutcomeDeadLetter = "dead_letter"
)

// Observer is told how messages end, for metrics; internal/metrics implements it. The
// consumer argument is the runner's stage name (preprocess, sink, webhooks...). Methods
// are called from the runner's goroutines and must not block.
type Observer interface {
	// Handled is called once per handled message with its outcome and the time its
	// batch took.
	Handled(consumer, outcome string, took time.Duration)
	// Retried counts a message handed back for a delayed redelivery after a failure.
	Retried(consumer string)
	// DeadLettered counts a message written to the DLQ.
	DeadLettered(consumer string)
}

// Observe reports every handled message to o (nil: Observe does nothing). Install it
// outside DeadLetters, so it sees the final verdict.
func Observe(o Observer, consumer string) Middleware {
	return func(next Handler) Handler {
		if o == nil {
			return next
		}
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			start := time.Now()
			results := next.Handle(ctx, batch)
			took := time.Since(start)
			for i := range results {
				outcome := OutcomeOK
				switch results[i].Action {
				case ActionRetry:
					outcome = OutcomeRetry
					o.Retried(consumer)
				case ActionReturn:
					outcome = OutcomeReturned
				case ActionTerm, ActionDeadLetter:
					outcome = OutcomeDeadLetter
					if results[i].Action == ActionTerm {
						o.DeadLettered(consumer)
					}
				default:
					if results[i].Err != nil {
						outcome = OutcomeRetry
						o.Retried(consumer)
					}
				}
				o.Handled(consumer, outcome, took)
			}
			return results
		})
	}
}
