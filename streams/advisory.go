package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
)

// maxDeliveriesAdvisory is the part of the server's advisory we use.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// WatchAdvisories starts only the dead-letter side of the runner: it moves messages
// that exhausted their deliveries to the DLQ through the same DeadLetter as the
// DeadLetters middleware (OnFailure first, the same headers). Run calls it; it is exported for tools and
// tests that watch without consuming. Call stop to unsubscribe.
func (r *Runner) WatchAdvisories() (stop func(), err error) {
	subs, err := r.subscribeAdvisories()
	if err != nil {
		return nil, err
	}
	return func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}, nil
}

// subscribeAdvisories listens for MaxDeliver advisories of this runner's consumers.
// They fire for messages that ran out of deliveries without the runner seeing a final
// error (a worker killed mid-message, AckWait expiring). A queue group makes exactly
// one replica handle each advisory. Consumers that retry for ever have none.
func (r *Runner) subscribeAdvisories() ([]*nats.Subscription, error) {
	var subs []*nats.Subscription
	if r.cfg.Spec.MaxDeliver <= 0 {
		return nil, nil
	}
	if r.nc == nil {
		return nil, errors.New("streams: runner needs a NATS connection to watch max-deliveries advisories")
	}
	for _, q := range r.queues {
		durable := r.cfg.Spec.DurableFor(q.tier)
		subj := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", r.cfg.Spec.Stream, durable)
		tier := q.tier
		sub, err := r.nc.QueueSubscribe(subj, "studio-dlq-"+durable, func(nm *nats.Msg) {
			r.onMaxDeliveries(nm, tier)
		})
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return nil, fmt.Errorf("streams: subscribe to %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return subs, nil
}

func (r *Runner) onMaxDeliveries(nm *nats.Msg, tier schemas.Tier) {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(nm.Data, &adv); err != nil {
		r.log.WithError(err).Warn("unreadable max-deliveries advisory")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := r.log.WithFields(logrus.Fields{"stream": adv.Stream, "stream_seq": adv.StreamSeq, "deliveries": adv.Deliveries})
	stream, err := r.js.Stream(ctx, adv.Stream)
	if err != nil {
		log.WithError(err).Error("max deliveries: cannot open stream")
		return
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if err != nil {
		// Already removed: another path (the runner's own last-delivery check) handled it.
		log.WithError(err).Debug("max deliveries: message already gone")
		return
	}
	m := &Msg{Subject: raw.Subject, Data: raw.Data, Header: raw.Header, Stream: adv.Stream, Tier: tier, Delivered: adv.Deliveries,
		StreamSeq: raw.Sequence, Published: raw.Time, Received: time.Now()}
	m.JobID, m.TraceID = m.Header.Get(HeaderJobID), trace.ID(m.Header.Get("traceparent"))
	reason := fmt.Errorf("%w (%d); the worker never finished it (crash or timeout)", ErrMaxDeliveries, adv.Deliveries)
	if err := r.dead.send(ctx, m, reason); err != nil {
		log.WithError(err).Error("max deliveries: could not write to the DLQ")
		return
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.DeadLettered(string(r.cfg.Stage))
	}
	log.Warn("message exhausted its deliveries; moved to the DLQ")
	// A work-queue stream keeps such a message until it is deleted; the request log
	// (limits retention) keeps it for replay.
	info, err := stream.Info(ctx)
	if err == nil && info.Config.Retention == jetstream.WorkQueuePolicy {
		if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil {
			log.WithError(err).Warn("max deliveries: could not delete the message from the work queue")
		}
	}
}
