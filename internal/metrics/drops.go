package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// drops are the series of what the service chose not to keep: audit events sampled
// out or lost, and messages the bounded streams discarded.
type drops struct {
	auditSampled *prometheus.CounterVec
	auditLost    *prometheus.CounterVec
	streamDrops  *prometheus.CounterVec
	streamBytes  *prometheus.GaugeVec
	telLost      *prometheus.CounterVec
}

func newDrops() drops {
	return drops{
		auditSampled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_audit_sampled_out_total",
			Help: "Unauthenticated failures counted but not stored in AUDIT (over the per-source or total sample of the minute; see --audit-anon-per-source).",
		}, []string{"action"}),
		auditLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_audit_lost_total",
			Help: "Audit events this process could not store (publish failed).",
		}, []string{"action"}),
		streamDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_stream_dropped_messages_total",
			Help: "Messages a discard-old stream (TELEMETRY, AUDIT, FEEDBACK, ...) removed to stay under its MaxBytes or MaxMsgs before their MaxAge, seen by PollStreams.",
		}, []string{"stream"}),
		streamBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "studio_stream_bytes",
			Help: "Bytes stored in a stream, polled from JetStream stream info; compare with its MaxBytes.",
		}, []string{"stream"}),
		telLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_telemetry_lost_total",
			Help: "Stage telemetry events (studio.telemetry.<stage>) a stage could not publish; the work itself went on.",
		}, []string{"stage"}),
	}
}

func (d drops) collectors() []prometheus.Collector {
	return []prometheus.Collector{d.auditSampled, d.auditLost, d.streamDrops, d.streamBytes, d.telLost}
}

// AuditSampledOut counts an unauthenticated failure not stored (auth.AuditCounter).
func (m *Metrics) AuditSampledOut(action string) {
	if m == nil {
		return
	}
	m.drops.auditSampled.WithLabelValues(action).Inc()
}

// AuditLost counts an audit event that could not be stored (auth.AuditCounter).
func (m *Metrics) AuditLost(action string) {
	if m == nil {
		return
	}
	m.drops.auditLost.WithLabelValues(action).Inc()
}

// TelemetryLost counts a stage telemetry event that could not be published
// (processors.TelemetryLossCounter).
func (m *Metrics) TelemetryLost(stage string) {
	if m == nil {
		return
	}
	m.drops.telLost.WithLabelValues(stage).Inc()
}

// StreamSample is the state of one stream, from JetStream stream info.
type StreamSample struct {
	Stream string
	Bytes  uint64
	// FirstSeq is the sequence of the oldest message kept; everything before it was
	// removed (by age, by size, or by acknowledgement in a work queue).
	FirstSeq uint64
	// FirstTime is the time of that message.
	FirstTime time.Time
	// MaxAge is the stream's age bound (0: none).
	MaxAge time.Duration
	// DiscardOld is true for streams that drop their oldest messages when full.
	DiscardOld bool
}

// StreamSource reads the state of the streams a process reports.
type StreamSource func(ctx context.Context) ([]StreamSample, error)

// streamDropper turns successive samples into studio_stream_dropped_messages_total:
// for a discard-old stream, the messages removed from its front while its oldest kept
// message is younger than MaxAge were removed for space, not age. Not safe for
// concurrent use; PollStreams owns one.
type streamDropper struct {
	first map[string]uint64
}

// observeStreams counts the drops since the previous sample of each stream and returns them.
func (m *Metrics) observeStreams(d *streamDropper, samples []StreamSample, now time.Time) map[string]uint64 {
	if d.first == nil {
		d.first = map[string]uint64{}
	}
	out := map[string]uint64{}
	for _, s := range samples {
		m.drops.streamBytes.WithLabelValues(s.Stream).Set(float64(s.Bytes))
		if !s.DiscardOld {
			continue
		}
		m.drops.streamDrops.WithLabelValues(s.Stream) // at zero from the first poll
		first := max(s.FirstSeq, 1)                   // a stream that never held a message reports 0
		prev, seen := d.first[s.Stream]
		d.first[s.Stream] = first
		if !seen || first <= prev {
			continue
		}
		if s.MaxAge > 0 && !s.FirstTime.IsZero() && now.Sub(s.FirstTime) >= s.MaxAge {
			continue // expiring by age: removals are retention, not drops
		}
		n := first - prev
		out[s.Stream] = n
		m.drops.streamDrops.WithLabelValues(s.Stream).Add(float64(n))
	}
	return out
}

// PollStreams sets studio_stream_bytes and advances studio_stream_dropped_messages_total
// from src now and then every interval until ctx ends; it blocks, so run it on its own
// goroutine. Drops are counted from the first poll on (a restart does not recount what
// was dropped before it).
func (m *Metrics) PollStreams(ctx context.Context, interval time.Duration, src StreamSource, log logrus.FieldLogger) {
	if m == nil || src == nil {
		return
	}
	if interval <= 0 {
		interval = DefaultQueueInterval
	}
	var d streamDropper
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, interval)
		samples, err := src(pctx)
		cancel()
		if err == nil {
			for stream, n := range m.observeStreams(&d, samples, time.Now()) {
				if log != nil {
					log.WithFields(logrus.Fields{"stream": stream, "dropped": n}).Warn("a bounded stream dropped its oldest messages to stay under its size bound")
				}
			}
		} else if log != nil && ctx.Err() == nil {
			log.WithError(err).Debug("stream state unavailable; keeping the last values")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
