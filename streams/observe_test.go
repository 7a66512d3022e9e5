package streams_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/creativeai-studio/studio/streams"
)

func TestObserve(t *testing.T) {
	verdicts := []streams.Result{
		{}, // ok
		{Err: errors.New("x"), Action: streams.ActionRetry},
		{Err: errors.New("x"), Action: streams.ActionReturn},
		{Err: errors.New("x"), Action: streams.ActionTerm}, // dead-lettered
		{Err: errors.New("x")},                             // unclassified: nak'ed with a delay
	}
	batch := make([]*streams.Msg, len(verdicts))
	for i := range batch {
		batch[i] = &streams.Msg{}
	}
	inner := streams.BatchHandlerFunc(func(context.Context, []*streams.Msg) []streams.Result { return verdicts })

	t.Run("each message is reported once with its outcome, retries and dead letters counted", func(t *testing.T) {
		var retries, dead atomic.Int32
		o := &countingObserver{retries: &retries, dead: &dead}
		streams.Observe(o, "preprocess")(inner).Handle(context.Background(), batch)
		if retries.Load() != 2 || dead.Load() != 1 {
			t.Fatalf("%d retries and %d dead letters; want 2 and 1", retries.Load(), dead.Load())
		}
		want := map[string]int32{streams.OutcomeOK: 1, streams.OutcomeRetry: 2, streams.OutcomeReturned: 1, streams.OutcomeDeadLetter: 1}
		for outcome, n := range want {
			v, ok := o.handled.Load(outcome)
			if !ok || v.(*atomic.Int32).Load() != n {
				t.Errorf("outcome %s reported %v times; want %d", outcome, v, n)
			}
		}
	})

	t.Run("without an observer the handler is not wrapped", func(t *testing.T) {
		h := streams.Observe(nil, "sink")(inner)
		if _, ok := h.(streams.BatchHandlerFunc); !ok {
			t.Fatalf("got %T", h)
		}
	})
}
