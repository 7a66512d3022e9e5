package bench

import (
	"context"
	"errors"
	"testing"
)

// feed, shared by the closed loop and the burst: the indexes go out in order until the
// run is cancelled, and the jobs not handed out by then are recorded as not submitted,
// with the cancellation as their error; next is closed either way.
func TestFeedHandsOutIndexesAndRecordsTheRestWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outs := make([]outcome, 5)
	next := make(chan int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		feed(ctx, next, outs)
	}()
	for want := range 2 {
		if got := <-next; got != want {
			t.Fatalf("index %d handed out, want %d", got, want)
		}
	}
	cancel()
	<-done
	if _, open := <-next; open {
		t.Error("next is still open after feed returned")
	}
	for i, o := range outs {
		notSubmitted := errors.Is(o.submitErr, context.Canceled)
		if handedOut := i < 2; handedOut == notSubmitted || (notSubmitted && o.index != i) {
			t.Errorf("job %d: %+v; want jobs 0 and 1 untouched, the rest recorded as cancelled", i, o)
		}
	}
}
