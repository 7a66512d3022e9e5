package streams

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/sirupsen/logrus"
)

// ErrPanic is the (transient) error a batch gets when its handler panicked.
var ErrPanic = errors.New("handler panicked")

// Recover turns a panicking handler into a transient failure of its whole batch, logged
// with the stack, so the batch is retried like any other failure. It also fails a
// batch whose handler returned the wrong number of results.
func Recover(log logrus.FieldLogger) Middleware {
	return func(next Handler) Handler {
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) (results []Result) {
			defer func() {
				if p := recover(); p != nil {
					log.WithFields(logrus.Fields{"panic": fmt.Sprint(p), "stack": string(debug.Stack()), "batch_size": len(batch)}).
						Error("handler panicked; the batch will be retried")
					results = failAll(len(batch), fmt.Errorf("%w: %v", ErrPanic, p))
				}
			}()
			results = next.Handle(ctx, batch)
			if len(results) != len(batch) {
				results = failAll(len(batch), fmt.Errorf("handler returned %d results for %d messages", len(results), len(batch)))
			}
			return results
		})
	}
}

func failAll(n int, err error) []Result {
	out := make([]Result, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}
