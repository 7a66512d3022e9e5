package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

func TestTimeout(t *testing.T) {
	blocking := func(err error) streams.HandlerFunc {
		return func(ctx context.Context, _ *streams.Msg) ([]streams.Output, error) {
			<-ctx.Done()
			if err != nil {
				return nil, err
			}
			return nil, ctx.Err()
		}
	}
	tests := []struct {
		name      string
		timeout   time.Duration
		handler   streams.HandlerFunc
		wantTO    bool // the error wraps ErrTimeout
		permanent bool
		ok        bool
	}{
		{name: "a handler past its deadline fails with a transient timeout error", timeout: 50 * time.Millisecond,
			handler: blocking(nil), wantTO: true},
		{name: "a permanent error returned after the deadline stays permanent", timeout: 50 * time.Millisecond,
			handler: blocking(&schemas.JobError{Code: "invalid_image"}), permanent: true},
		{name: "a fast handler is untouched", timeout: time.Second, ok: true,
			handler: func(context.Context, *streams.Msg) ([]streams.Output, error) { return nil, nil }},
		{name: "a late success is kept", timeout: 20 * time.Millisecond, ok: true,
			handler: func(context.Context, *streams.Msg) ([]streams.Output, error) {
				time.Sleep(60 * time.Millisecond)
				return nil, nil
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := streams.Timeout(tt.timeout)(tt.handler).Handle(context.Background(), []*streams.Msg{{}})[0]
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("took %s", took)
			}
			switch {
			case tt.ok:
				if res.Err != nil {
					t.Fatalf("error %v", res.Err)
				}
			case tt.wantTO:
				if !errors.Is(res.Err, streams.ErrTimeout) || !errors.Is(res.Err, context.DeadlineExceeded) || streams.IsPermanent(res.Err) {
					t.Fatalf("error %v; want a transient ErrTimeout", res.Err)
				}
			case tt.permanent:
				if !streams.IsPermanent(res.Err) || errors.Is(res.Err, streams.ErrTimeout) {
					t.Fatalf("error %v; want the permanent error unchanged", res.Err)
				}
			}
		})
	}

	t.Run("no deadline leaves the handler unwrapped", func(t *testing.T) {
		h := streams.HandlerFunc(func(context.Context, *streams.Msg) ([]streams.Output, error) { return nil, nil })
		if got, ok := streams.Timeout(0)(h).(streams.HandlerFunc); !ok || got == nil {
			t.Fatalf("Timeout(0) wrapped the handler: %T", streams.Timeout(0)(h))
		}
	})

	t.Run("shutdown is not reported as a timeout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		res := streams.Timeout(time.Hour)(blocking(nil)).Handle(ctx, []*streams.Msg{{}})[0]
		if !errors.Is(res.Err, context.Canceled) || errors.Is(res.Err, streams.ErrTimeout) {
			t.Fatalf("error %v; want the cancellation unchanged", res.Err)
		}
	})
}
