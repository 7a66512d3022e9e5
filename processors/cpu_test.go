package processors

import (
	"context"
	"crypto/sha256"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/streams"
)

func TestMeasureCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread CPU time is read on Linux only")
	}
	burn := func() { // about 25-50 ms of CPU on a server core
		buf := make([]byte, 16<<20)
		for i := 0; i < 2; i++ {
			sha256.Sum256(buf)
		}
	}
	for _, tc := range []struct {
		name     string
		work     func()
		min, max time.Duration
	}{
		{"a handler that computes is charged its CPU", burn, 10 * time.Millisecond, 5 * time.Second},
		{"a handler that waits is charged almost nothing", func() { time.Sleep(100 * time.Millisecond) }, 0, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var got time.Duration
			var jobs int
			var stage string
			h := MeasureCPU("preprocess", func(s string, cpu time.Duration, n int) {
				mu.Lock()
				defer mu.Unlock()
				stage, got, jobs = s, got+cpu, jobs+n
			})(streams.BatchHandlerFunc(func(ctx context.Context, batch []*streams.Msg) []streams.Result {
				tc.work()
				return make([]streams.Result, len(batch))
			}))
			res := h.Handle(context.Background(), []*streams.Msg{{}, {}})
			if len(res) != 2 {
				t.Fatalf("%d results for 2 messages", len(res))
			}
			mu.Lock()
			defer mu.Unlock()
			if stage != "preprocess" || jobs != 2 {
				t.Errorf("recorded stage %q, %d jobs; want preprocess, 2", stage, jobs)
			}
			if got < tc.min || got > tc.max {
				t.Errorf("recorded %s of CPU, want between %s and %s", got, tc.min, tc.max)
			}
		})
	}
}
