package app

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/metrics"
)

// StreamSource reads the state of every stream on the server for metrics.PollStreams,
// which counts what the discard-old streams (telemetry, audit, feedback) dropped.
func StreamSource(bus *Bus) metrics.StreamSource {
	return func(ctx context.Context) ([]metrics.StreamSample, error) {
		var out []metrics.StreamSample
		list := bus.JS.ListStreams(ctx)
		for info := range list.Info() {
			out = append(out, metrics.StreamSample{
				Stream: info.Config.Name, Bytes: info.State.Bytes,
				FirstSeq: info.State.FirstSeq, FirstTime: info.State.FirstTime,
				MaxAge:     info.Config.MaxAge,
				DiscardOld: info.Config.Discard == jetstream.DiscardOld && info.Config.Retention == jetstream.LimitsPolicy,
			})
		}
		if err := list.Err(); err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		return out, nil
	}
}
