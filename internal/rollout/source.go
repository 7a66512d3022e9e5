package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
)

// Source measures a task's versions over a window. StreamSource is the one the product
// uses; the interface lets the controller be judged on any window.
type Source interface {
	// Window returns a tally of task's results (and model's feedback) stored from since.
	Window(ctx context.Context, task schemas.Task, model string, since time.Time, ignore []string) (*Tally, error)
}

// StreamSource reads the pipeline's own record of what happened: the RESULTS stream
// (every job's final state, version, error code and stage durations) and the FEEDBACK
// stream (ratings tagged with the version), replayed from the window's start with an
// ordered consumer. Each call is one pass over the window's messages. Safe for
// concurrent use.
type StreamSource struct {
	JS jetstream.JetStream
}

var _ Source = StreamSource{}

// Window implements Source.
func (s StreamSource) Window(ctx context.Context, task schemas.Task, model string, since time.Time, ignore []string) (*Tally, error) {
	t := NewTally(task, ignore)
	err := replay(ctx, s.JS, schemas.StreamResults, schemas.RootResults+".*."+string(task), since, func(data []byte) {
		var e schemas.ResultEvent
		if json.Unmarshal(data, &e) == nil && e.Model == model {
			t.AddResult(e)
		}
	})
	if err != nil {
		return nil, err
	}
	err = replay(ctx, s.JS, schemas.StreamFeedback, schemas.SubjectFeedback, since, func(data []byte) {
		var f schemas.Feedback
		if json.Unmarshal(data, &f) == nil && f.Model == model {
			t.AddFeedback(f.ModelVersion, f.Rating)
		}
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// replay calls fn with every message of stream on subject stored at or after since, up
// to the last one stored when it started.
func replay(ctx context.Context, js jetstream.JetStream, stream, subject string, since time.Time, fn func([]byte)) error {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since,
	})
	if err != nil {
		return fmt.Errorf("rollout: read %s from %s: %w", subject, stream, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("rollout: read %s from %s: %w", subject, stream, err)
	}
	pending := info.NumPending
	for pending > 0 {
		batch, err := c.Fetch(int(min(pending, 256)), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("rollout: read %s from %s: %w", subject, stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			fn(m.Data())
			meta, err := m.Metadata()
			if err == nil && meta.NumPending == 0 {
				pending = 0
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("rollout: read %s from %s: %w", subject, stream, err)
		}
		if n == 0 {
			break // nothing arrived within the wait: the window is read
		}
		if pending > 0 {
			pending -= uint64(min(uint64(n), pending))
		}
	}
	return nil
}
