package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// messageStreams are the streams whose messages per job the bench reports: the
// analytics streams a job writes besides its pipeline events.
var messageStreams = []string{schemas.StreamTelemetry, schemas.StreamResults, schemas.StreamAudit}

// streamCounter reads how many messages each of messageStreams has stored so far
// (its last sequence, so what a limit removed still counts). Nil when NATS cannot be
// reached: the report then leaves the figures out.
type streamCounter struct{ js jetstream.JetStream }

func newStreamCounter(natsURL, creds string) (*streamCounter, func()) {
	nc, err := streams.Dial(natsURL, "studio-bench-counter", creds)
	if err != nil {
		return nil, func() {}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, func() {}
	}
	return &streamCounter{js: js}, nc.Close
}

func (c *streamCounter) read(ctx context.Context) map[string]uint64 {
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out := map[string]uint64{}
	for _, name := range messageStreams {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			continue
		}
		out[name] = info.State.LastSeq
	}
	return out
}

// messagesPerJob turns two readings into messages per job, by stream.
func messagesPerJob(before, after map[string]uint64, jobs int) map[string]float64 {
	if before == nil || after == nil || jobs == 0 {
		return nil
	}
	out := map[string]float64{}
	for name, n := range after {
		out[name] = float64(n-before[name]) / float64(jobs)
	}
	return out
}

func fmtMessagesPerJob(m map[string]float64, line func(string, ...any)) {
	var parts []string
	for _, name := range messageStreams {
		if v, ok := m[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", name, v))
		}
	}
	line("messages per job\t%s", strings.Join(parts, ", "))
}

// pause waits d or until ctx ends; it reports whether the full wait passed.
func pause(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}
