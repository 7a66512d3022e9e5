package streams_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

func TestRetry(t *testing.T) {
	policy := streams.RetryPolicy{MaxDeliver: 4, BackoffBase: 100 * time.Millisecond, BackoffMax: 300 * time.Millisecond}
	transient := errors.New("storage timeout")
	tests := []struct {
		name      string
		policy    streams.RetryPolicy
		err       error
		delivered int
		cancelled bool
		action    streams.Action
		delay     time.Duration
		errHas    string
	}{
		{name: "a success is left to be acked", policy: policy, delivered: 1, action: streams.ActionNone},
		{name: "a job error goes to the DLQ at once", policy: policy, delivered: 1,
			err: fmt.Errorf("decode: %w", &schemas.JobError{Code: "corrupt_image", Message: "truncated"}), action: streams.ActionDeadLetter},
		{name: "an error wrapping ErrPermanent goes to the DLQ at once", policy: policy, delivered: 1,
			err: fmt.Errorf("bad row: %w", streams.ErrPermanent), action: streams.ActionDeadLetter},
		{name: "Permanent keeps the text and goes to the DLQ", policy: policy, delivered: 2,
			err: streams.Permanent(errors.New("not a result event")), action: streams.ActionDeadLetter, errHas: "not a result event"},
		{name: "a first transient failure is retried after the base delay", policy: policy, err: transient, delivered: 1,
			action: streams.ActionRetry, delay: 100 * time.Millisecond},
		{name: "the delay doubles with each delivery", policy: policy, err: transient, delivered: 2,
			action: streams.ActionRetry, delay: 200 * time.Millisecond},
		{name: "the delay is capped", policy: policy, err: transient, delivered: 3,
			action: streams.ActionRetry, delay: 300 * time.Millisecond},
		{name: "a transient failure on the last delivery goes to the DLQ with the last error", policy: policy, err: transient, delivered: 4,
			action: streams.ActionDeadLetter, errHas: "maximum number of times without success (4): last error: storage timeout"},
		{name: "a consumer that never gives up retries for ever", policy: streams.RetryPolicy{MaxDeliver: -1, BackoffBase: time.Second, BackoffMax: 2 * time.Second},
			err: transient, delivered: 1000, action: streams.ActionRetry, delay: 2 * time.Second},
		{name: "work cut short by shutdown is handed back at once", policy: policy, err: context.Canceled, delivered: 1, cancelled: true,
			action: streams.ActionReturn},
		{name: "a permanent error during shutdown still goes to the DLQ", policy: policy, delivered: 1, cancelled: true,
			err: &schemas.JobError{Code: "invalid_image"}, action: streams.ActionDeadLetter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			m := &streams.Msg{Subject: "s", Delivered: tt.delivered}
			h := streams.Retry(tt.policy, quietLog())(streams.HandlerFunc(func(context.Context, *streams.Msg) ([]streams.Output, error) {
				return nil, tt.err
			}))
			res := h.Handle(ctx, []*streams.Msg{m})[0]
			if res.Action != tt.action || res.Delay != tt.delay {
				t.Fatalf("action %d delay %s; want %d and %s (err %v)", res.Action, res.Delay, tt.action, tt.delay, res.Err)
			}
			if tt.errHas != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tt.errHas)) {
				t.Fatalf("error %v; want it to contain %q", res.Err, tt.errHas)
			}
			if strings.Contains(tt.errHas, "maximum") && (!errors.Is(res.Err, streams.ErrMaxDeliveries) || !errors.Is(res.Err, transient)) {
				t.Fatalf("%v does not wrap ErrMaxDeliveries and the cause", res.Err)
			}
		})
	}
}
