package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
)

// StreamAdvisories keeps the server's max-deliveries advisories, so that a message
// that ran out of deliveries while no runner was up (every worker of a stage killed) is
// still dead-lettered when one starts. Topology.Provision creates it.
const StreamAdvisories = "ADVISORIES"

// maxDeliveriesPrefix is the subject root of the server's max-deliveries advisories;
// the stream and consumer names follow: <prefix>.<stream>.<consumer>.
const maxDeliveriesPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// AdvisoryConfig returns the ADVISORIES stream: every max-deliveries advisory of the
// account, kept ResultsMaxAge, bounded (64 MiB, oldest dropped) and replicated like the
// other streams.
func (t Topology) AdvisoryConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAdvisories,
		Description: "max-deliveries advisories, consumed by the stage runners to dead-letter messages whose workers died",
		Subjects:    []string{maxDeliveriesPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      t.ResultsMaxAge,
		MaxBytes:    64 << 20,
		Discard:     jetstream.DiscardOld,
		Storage:     t.Storage,
		Replicas:    t.Replicas,
	}
}

// maxDeliveriesAdvisory is the part of the server's advisory we use.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries int    `json:"deliveries"`
}

// WatchAdvisories starts only the dead-letter side of the runner: it moves messages
// that exhausted their deliveries to the DLQ through the same DeadLetter as the
// DeadLetters middleware (OnFailure first, the same headers). Run calls it; it is
// exported for tools and tests that watch without consuming. Call stop to end it.
//
// The advisories are read from the ADVISORIES stream through a durable consumer shared
// by the replicas of this runner ("dlq-<durable>"), so one fired while no runner was up
// is handled when one starts, and one whose dead letter could not be written is tried
// again. Without that stream (not provisioned) it falls back to a core-NATS
// subscription, which misses advisories fired while no runner listens.
func (r *Runner) WatchAdvisories() (stop func(), err error) {
	if r.cfg.Spec.MaxDeliver <= 0 {
		return func() {}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := r.js.Stream(ctx, StreamAdvisories)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		r.log.Warn("no ADVISORIES stream (provision the topology); max-deliveries advisories fired while no runner is up will be missed")
		return r.subscribeAdvisories()
	}
	if err != nil {
		return nil, fmt.Errorf("streams: open the %s stream: %w", StreamAdvisories, err)
	}
	return r.consumeAdvisories(ctx, stream)
}

// advisorySubject is the advisory subject of one tier's durable.
func (r *Runner) advisorySubject(tier schemas.Tier) string {
	return fmt.Sprintf("%s.%s.%s", maxDeliveriesPrefix, r.cfg.Spec.Stream, r.cfg.Spec.DurableFor(tier))
}

// consumeAdvisories reads this runner's advisories from the ADVISORIES stream.
func (r *Runner) consumeAdvisories(ctx context.Context, stream jetstream.Stream) (func(), error) {
	tiers := map[string]schemas.Tier{}
	var subjects []string
	for _, q := range r.queues {
		s := r.advisorySubject(q.tier)
		tiers[s] = q.tier
		subjects = append(subjects, s)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        "dlq-" + r.cfg.Spec.Durable,
		Description:    "dead-letters the messages of " + r.cfg.Spec.Durable + " that ran out of deliveries",
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        time.Minute,
		MaxDeliver:     -1, // a dead letter that could not be written is tried until it is
		FilterSubjects: subjects,
	}
	if len(subjects) == 1 {
		cfg.FilterSubject, cfg.FilterSubjects = subjects[0], nil
	}
	var cons jetstream.Consumer
	err := r.cfg.Startup.Do(ctx, "consumer "+cfg.Durable+" on "+StreamAdvisories, func(ctx context.Context) error {
		var err error
		cons, err = stream.CreateOrUpdateConsumer(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("streams: ensure consumer %s on %s: %w", cfg.Durable, StreamAdvisories, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(msg.Data(), &adv); err != nil {
			r.log.WithError(err).Warn("unreadable max-deliveries advisory; dropping it")
			_ = msg.Term()
			return
		}
		hctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.handleMaxDeliveries(hctx, adv, tiers[msg.Subject()]); err != nil {
			r.log.WithError(err).WithField("stream_seq", adv.StreamSeq).Error("max deliveries: will try again")
			_ = msg.NakWithDelay(r.cfg.BackoffMax)
			return
		}
		_ = msg.Ack()
	}, jetstream.PullExpiry(r.cfg.PullExpiry))
	if err != nil {
		return nil, fmt.Errorf("streams: read %s: %w", StreamAdvisories, err)
	}
	return cc.Stop, nil
}

// subscribeAdvisories listens for MaxDeliver advisories of this runner's consumers on
// core NATS (the fallback without an ADVISORIES stream). A queue group makes exactly
// one replica handle each advisory.
func (r *Runner) subscribeAdvisories() (func(), error) {
	if r.nc == nil {
		return nil, errors.New("streams: runner needs a NATS connection to watch max-deliveries advisories")
	}
	var subs []*nats.Subscription
	stop := func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}
	for _, q := range r.queues {
		durable := r.cfg.Spec.DurableFor(q.tier)
		subj := r.advisorySubject(q.tier)
		tier := q.tier
		sub, err := r.nc.QueueSubscribe(subj, "studio-dlq-"+durable, func(nm *nats.Msg) {
			var adv maxDeliveriesAdvisory
			if err := json.Unmarshal(nm.Data, &adv); err != nil {
				r.log.WithError(err).Warn("unreadable max-deliveries advisory")
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := r.handleMaxDeliveries(ctx, adv, tier); err != nil {
				r.log.WithError(err).WithField("stream_seq", adv.StreamSeq).Error("max deliveries: advisory lost")
			}
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("streams: subscribe to %s: %w", subj, err)
		}
		subs = append(subs, sub)
	}
	return stop, nil
}

// handleMaxDeliveries dead-letters the message an advisory names and removes it from a
// work queue. A message already gone was handled (or erased) and is no error; any
// other failure is returned, so the advisory is tried again.
func (r *Runner) handleMaxDeliveries(ctx context.Context, adv maxDeliveriesAdvisory, tier schemas.Tier) error {
	log := r.log.WithFields(logrus.Fields{"stream": adv.Stream, "stream_seq": adv.StreamSeq, "deliveries": adv.Deliveries})
	stream, err := r.js.Stream(ctx, adv.Stream)
	if err != nil {
		return fmt.Errorf("open stream %s: %w", adv.Stream, err)
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || isNoMessage(err) {
		log.Debug("max deliveries: message already gone")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s seq %d: %w", adv.Stream, adv.StreamSeq, err)
	}
	m := &Msg{Subject: raw.Subject, Data: raw.Data, Header: raw.Header, Stream: adv.Stream, Tier: tier, Delivered: adv.Deliveries,
		StreamSeq: raw.Sequence, Published: raw.Time, Received: time.Now()}
	m.JobID, m.TraceID = m.Header.Get(HeaderJobID), trace.ID(m.Header.Get("traceparent"))
	reason := fmt.Errorf("%w (%d); the worker never finished it (crash or timeout)", ErrMaxDeliveries, adv.Deliveries)
	switch err := r.dead.send(ctx, m, reason); {
	case errors.Is(err, ErrSuperseded):
		log.Info("message exhausted its deliveries but its job has moved on; dropping it")
	case err != nil:
		return fmt.Errorf("write the dead letter: %w", err)
	default:
		if r.cfg.Observer != nil {
			r.cfg.Observer.DeadLettered(string(r.cfg.Stage))
		}
		log.Warn("message exhausted its deliveries; moved to the DLQ")
	}
	// A work-queue stream keeps such a message until it is deleted; the request log
	// (limits retention) keeps it for replay.
	info, err := stream.Info(ctx)
	if err == nil && info.Config.Retention == jetstream.WorkQueuePolicy {
		if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !isNoMessage(err) {
			log.WithError(err).Warn("max deliveries: could not delete the message from the work queue")
		}
	}
	return nil
}

// isNoMessage reports whether err says a stream holds no message at a sequence.
func isNoMessage(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound || strings.Contains(apiErr.Description, "no message found"))
}
