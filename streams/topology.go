package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
)

// StreamSpec declares one pipeline stream: its name, purpose and subjects. Topology adds
// storage, replicas, de-duplication and age. The stage table (processors.Stages) yields
// the pipeline's specs; streams knows no stage.
type StreamSpec struct {
	Name        string
	Description string
	Subjects    []string
	// WorkQueue removes each message once a consumer acknowledged it; otherwise the
	// stream is a replayable log kept for Topology.RequestsMaxAge.
	WorkQueue bool
}

// Topology sizes the streams. The zero value is not useful; use DefaultTopology.
type Topology struct {
	// Replicas is the stream replication factor: 1 embedded, 3 on a cluster.
	Replicas int
	// Storage is file for production; tests may use memory.
	Storage jetstream.StorageType
	// RequestsMaxAge keeps the pipeline streams that are logs, not work queues (the
	// replayable request log).
	RequestsMaxAge time.Duration
	// ResultsMaxAge keeps results, telemetry and feedback for the sink and late subscribers.
	ResultsMaxAge time.Duration
	// DLQMaxAge keeps dead letters for inspection.
	DLQMaxAge time.Duration
	// JobsMaxAge expires job records.
	JobsMaxAge time.Duration
	// Duplicates is the Nats-Msg-Id de-duplication window.
	Duplicates time.Duration
}

// DefaultTopology returns the production sizing with the given replica count.
func DefaultTopology(replicas int) Topology {
	if replicas < 1 {
		replicas = 1
	}
	return Topology{
		Replicas:       replicas,
		Storage:        jetstream.FileStorage,
		RequestsMaxAge: 7 * 24 * time.Hour,
		ResultsMaxAge:  7 * 24 * time.Hour,
		DLQMaxAge:      30 * 24 * time.Hour,
		JobsMaxAge:     30 * 24 * time.Hour,
		Duplicates:     10 * time.Minute,
	}
}

// StreamConfigs lists every stream: the pipeline's (in order) followed by results,
// telemetry, audit, feedback and the DLQ.
func (t Topology) StreamConfigs(pipeline []StreamSpec) []jetstream.StreamConfig {
	s := func(name, desc string, subjects []string, ret jetstream.RetentionPolicy, age time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   ret,
			MaxAge:      age,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			Duplicates:  t.Duplicates,
			Discard:     jetstream.DiscardOld,
		}
	}
	out := make([]jetstream.StreamConfig, 0, len(pipeline)+5)
	for _, p := range pipeline {
		if p.WorkQueue {
			out = append(out, s(p.Name, p.Description, p.Subjects, jetstream.WorkQueuePolicy, 0))
		} else {
			out = append(out, s(p.Name, p.Description, p.Subjects, jetstream.LimitsPolicy, t.RequestsMaxAge))
		}
	}
	return append(out,
		s(schemas.StreamResults, "final job outcomes per tenant", []string{schemas.RootResults + ".>"}, jetstream.LimitsPolicy, t.ResultsMaxAge),
		s(schemas.StreamTelemetry, "stage runs and HTTP requests for the sink", []string{"studio.telemetry.>"}, jetstream.LimitsPolicy, t.ResultsMaxAge),
		s(schemas.StreamAudit, "audit trail", []string{"studio.audit.>"}, jetstream.LimitsPolicy, t.DLQMaxAge),
		s(schemas.StreamFeedback, "user feedback on results", []string{"studio.feedback"}, jetstream.LimitsPolicy, t.DLQMaxAge),
		s(schemas.StreamDLQ, "poison messages with reason, stage and attempts headers", []string{"studio.dlq.>"}, jetstream.LimitsPolicy, t.DLQMaxAge),
	)
}

// Provision creates or updates every stream (the pipeline's, which the stage table
// processors.Stages declares, and the rest) and the given KV buckets (each domain package
// declares its own; internal/topology lists them all). It is idempotent and safe to run
// from several processes at once.
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream, pipeline []StreamSpec, buckets ...jetstream.KeyValueConfig) error {
	for _, cfg := range t.StreamConfigs(pipeline) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("streams: provision stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range buckets {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("streams: provision KV bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// ConsumerSpec describes the durable consumers of one stage: one per tier, each
// filtered to that tier's subjects. processors.Stages yields each stage's spec.
type ConsumerSpec struct {
	Stream string
	// Durable names the consumer group; the tier is appended ("preprocess-premium").
	Durable string
	// Filter returns the filter subject for a tier.
	Filter func(schemas.Tier) string
	// AckWait should exceed the stage's p99 processing time; the runner also sends
	// InProgress while a message is held.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries; the last failure goes to the DLQ.
	MaxDeliver int
	// MaxAckPending bounds the messages one consumer group holds unacknowledged.
	MaxAckPending int
}

// DurableFor returns the consumer name for a tier.
func (c ConsumerSpec) DurableFor(t schemas.Tier) string { return c.Durable + "-" + string(t) }

// Ensure creates or updates the consumers of every tier.
func (c ConsumerSpec) Ensure(ctx context.Context, js jetstream.JetStream) (map[schemas.Tier]jetstream.Consumer, error) {
	out := make(map[schemas.Tier]jetstream.Consumer, len(schemas.Tiers))
	for _, tier := range schemas.Tiers {
		cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
			Durable:       c.DurableFor(tier),
			FilterSubject: c.Filter(tier),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.AckWait,
			MaxDeliver:    c.MaxDeliver,
			MaxAckPending: c.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return nil, fmt.Errorf("streams: ensure consumer %s on %s: %w", c.DurableFor(tier), c.Stream, err)
		}
		out[tier] = cons
	}
	return out, nil
}

// Backlog returns how many messages wait for (or are being handled by) a stage's
// consumer of one tier: pending plus unacknowledged.
func Backlog(ctx context.Context, js jetstream.JetStream, spec ConsumerSpec, tier schemas.Tier) (int, error) {
	c, err := js.Consumer(ctx, spec.Stream, spec.DurableFor(tier))
	if err != nil {
		return 0, fmt.Errorf("streams: consumer %s: %w", spec.DurableFor(tier), err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("streams: consumer %s info: %w", spec.DurableFor(tier), err)
	}
	return int(info.NumPending) + info.NumAckPending, nil
}
