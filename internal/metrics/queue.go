package metrics

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
)

// QueueSample is the backlog of one stage's tier consumer, from JetStream consumer info.
type QueueSample struct {
	Stage, Tier string
	// Pending counts messages not yet delivered (num_pending).
	Pending uint64
	// AckPending counts messages delivered and not yet acknowledged (num_ack_pending).
	AckPending int
}

// QueueSource reads the backlog of the consumers a process reports. Consumers that do
// not exist yet (no worker of that stage has started) are left out, not an error.
type QueueSource func(ctx context.Context) ([]QueueSample, error)

// DefaultQueueInterval is how often PollQueues reads consumer info: often enough for
// alerts and autoscaling, rare enough to cost the server nothing.
const DefaultQueueInterval = 5 * time.Second

// PollQueues sets studio_queue_depth and studio_consumer_lag from src now and then every
// interval until ctx ends; it blocks, so run it on its own goroutine. Samples with the
// same stage and tier (the inference stage's per-model consumers) are summed. A round
// whose read fails changes nothing (a partial sum would look like a draining queue) and
// is logged at debug level.
func (m *Metrics) PollQueues(ctx context.Context, interval time.Duration, src QueueSource, log logrus.FieldLogger) {
	if m == nil || src == nil {
		return
	}
	if interval <= 0 {
		interval = DefaultQueueInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.pollOnce(ctx, interval, src, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Metrics) pollOnce(ctx context.Context, timeout time.Duration, src QueueSource, log logrus.FieldLogger) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	samples, err := src(pctx)
	if err != nil {
		if log != nil && ctx.Err() == nil {
			log.WithError(err).Debug("queue depth: consumer info unavailable; keeping the last values")
		}
		return
	}
	type key struct{ stage, tier string }
	depth := map[key]float64{}
	lag := map[key]float64{}
	for _, s := range samples {
		k := key{s.Stage, s.Tier}
		depth[k] += float64(s.Pending) + float64(s.AckPending)
		lag[k] += float64(s.Pending)
	}
	for k, v := range depth {
		m.queueDepth.WithLabelValues(k.stage, k.tier).Set(v)
		m.consumerLag.WithLabelValues(k.stage, k.tier).Set(lag[k])
	}
}
