package streams

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrTimeout is the error of a message whose handler ran past its deadline.
var ErrTimeout = errors.New("handler ran past its deadline")

// Timeout gives each Handle call (one batch, handled together) a deadline of d; 0 or
// less sets none. The deadline is cooperative: the handler's context ends, and a
// failure it returns after that wraps ErrTimeout and context.DeadlineExceeded. Such a
// failure is transient: a slow run may succeed on another delivery or worker, and one
// that keeps timing out reaches the DLQ after MaxDeliver with "handler ran past its
// deadline" in its reason. A success returned late is kept: its outputs are valid.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		if d <= 0 {
			return next
		}
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			tctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			results := next.Handle(tctx, batch)
			if ctx.Err() != nil || !errors.Is(tctx.Err(), context.DeadlineExceeded) {
				return results // no timeout, or the outer context ended first
			}
			for i := range results {
				if err := results[i].Err; err != nil && !IsPermanent(err) {
					results[i].Err = fmt.Errorf("%w (%s): %w", ErrTimeout, d, err)
				}
			}
			return results
		})
	}
}
