package processors

import (
	"context"
	"runtime"
	"time"

	"github.com/creativeai-studio/studio/streams"
)

// CPURecorder receives the CPU time a stage's handler spent on a batch of jobs. It is
// called from many goroutines and must not block.
type CPURecorder func(stage string, cpu time.Duration, jobs int)

// MeasureCPU is middleware that charges a stage's handler CPU to the stage: each batch
// is handled locked to one OS thread, whose CPU time (user + system, read with
// getrusage RUSAGE_THREAD before and after) is what the handler's goroutine used: while
// it is locked, no other goroutine runs on that thread, and the thread sleeps while the
// goroutine waits. It covers decoding, resampling, encoding, the job-record updates and
// the calling thread's part of a model run; not goroutines the handler starts, ONNX
// Runtime's own pool threads, the NATS client's reader or the garbage collector's
// workers (a process's CPU less the stages' is that rest). On a system without per-thread
// CPU time it records nothing.
func MeasureCPU(stage string, record CPURecorder) streams.Middleware {
	return func(next streams.Handler) streams.Handler {
		return streams.BatchHandlerFunc(func(ctx context.Context, batch []*streams.Msg) []streams.Result {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			start, ok := threadCPU()
			results := next.Handle(ctx, batch)
			if end, ok2 := threadCPU(); ok && ok2 {
				record(stage, end-start, len(batch))
			}
			return results
		})
	}
}
