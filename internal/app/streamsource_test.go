package app

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// A telemetry flood makes a discard-old stream drop its oldest messages; the drops are
// counted in studio_stream_dropped_messages_total, while a work queue's acknowledged
// messages and a stream within its bound count nothing.
func TestDroppedStreamMessagesAreCountedInMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := streamstest.Start(t)
	for _, cfg := range []jetstream.StreamConfig{
		{Name: "FLOODED", Subjects: []string{"flooded.>"}, MaxBytes: 4 << 10, MaxAge: 30 * 24 * time.Hour, Discard: jetstream.DiscardOld},
		{Name: "QUIET", Subjects: []string{"quiet.>"}, MaxBytes: 1 << 20, Discard: jetstream.DiscardOld},
		{Name: "WORK", Subjects: []string{"work.>"}, MaxBytes: 4 << 10, Discard: jetstream.DiscardNew, Retention: jetstream.WorkQueuePolicy},
	} {
		_, err := s.JS.CreateStream(ctx, cfg)
		require.NoError(t, err)
	}
	m := metrics.New()
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		m.PollStreams(pollCtx, 20*time.Millisecond, StreamSource(&Bus{NC: s.NC, JS: s.JS}), nil)
	}()
	defer func() { stopPoll(); <-polled }()
	dropped := func(stream string) float64 {
		v, _ := seriesValue(m, "studio_stream_dropped_messages_total", stream)
		return v
	}
	// The first poll sets the baseline.
	streamstest.Eventually(t, 10*time.Second, func() bool { return counted(m, "studio_stream_dropped_messages_total", "QUIET") }, "never polled")

	payload := make([]byte, 200)
	for i := range 100 {
		_, err := s.JS.Publish(ctx, fmt.Sprintf("flooded.%d", i), payload)
		require.NoError(t, err)
		_, err = s.JS.Publish(ctx, "quiet.x", payload)
		require.NoError(t, err)
	}
	st, err := s.JS.Stream(ctx, "FLOODED")
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	lost := float64(info.State.FirstSeq - 1)
	require.Greater(t, lost, 50.0, "the 4 KiB bound dropped most of 20 KB")
	streamstest.Eventually(t, 10*time.Second, func() bool { return dropped("FLOODED") == lost }, "studio_stream_dropped_messages_total{stream=FLOODED} never reached %v", lost)
	require.Zero(t, dropped("QUIET"))
	require.False(t, counted(m, "studio_stream_dropped_messages_total", "WORK"), "a work queue refuses, it does not drop")
}

// seriesValue returns the value of name{stream=stream} in m's registry, and whether it
// exists.
func seriesValue(m *metrics.Metrics, name, stream string) (float64, bool) {
	families, err := m.Registry().Gather()
	if err != nil {
		return 0, false
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "stream" && l.GetValue() == stream {
					return mt.GetCounter().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func counted(m *metrics.Metrics, name, stream string) bool {
	_, ok := seriesValue(m, name, stream)
	return ok
}
