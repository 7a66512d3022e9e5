package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

	// WorkMaxBytes bounds each pipeline stream (the request log and the stages' work
	// queues). A full one refuses new messages (DiscardNew): work already accepted is
	// never dropped, and ingest answers 503 queue_full with Retry-After.
	WorkMaxBytes int64
	// ResultsMaxBytes, TelemetryMaxBytes, AuditMaxBytes, FeedbackMaxBytes and
	// DLQMaxBytes bound the other streams. A full one drops its oldest messages
	// (DiscardOld), so a flood of telemetry or audit events can neither fill the disk
	// nor stop the service.
	ResultsMaxBytes   int64
	TelemetryMaxBytes int64
	AuditMaxBytes     int64
	FeedbackMaxBytes  int64
	DLQMaxBytes       int64
}

// Default stream bounds. Together (four pipeline streams and five others) they reserve
// at most 2.06 GiB per replica, which JetStream must be able to reserve on the data
// directory's disk (it refuses a stream whose bound exceeds 75% of the free space): it
// fits the embedded default and the dev overlay's 5 GiB volume. Messages are small
// (images travel through the object store), so 256 MiB queues thousands of jobs.
// Production raises the bounds to the backlog it must absorb (WithMaxBytes,
// --stream-max-bytes).
const (
	DefaultWorkMaxBytes      = 256 << 20
	DefaultResultsMaxBytes   = 256 << 20
	DefaultTelemetryMaxBytes = 256 << 20
	DefaultAuditMaxBytes     = 256 << 20
	DefaultFeedbackMaxBytes  = 64 << 20
	DefaultDLQMaxBytes       = 256 << 20
)

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

		WorkMaxBytes:      DefaultWorkMaxBytes,
		ResultsMaxBytes:   DefaultResultsMaxBytes,
		TelemetryMaxBytes: DefaultTelemetryMaxBytes,
		AuditMaxBytes:     DefaultAuditMaxBytes,
		FeedbackMaxBytes:  DefaultFeedbackMaxBytes,
		DLQMaxBytes:       DefaultDLQMaxBytes,
	}
}

// WithMaxBytes returns t with every stream bounded to n bytes (n > 0), the one knob of
// --stream-max-bytes; the discard policies stay as each stream's role needs.
func (t Topology) WithMaxBytes(n int64) Topology {
	if n > 0 {
		t.WorkMaxBytes, t.ResultsMaxBytes, t.TelemetryMaxBytes = n, n, n
		t.AuditMaxBytes, t.FeedbackMaxBytes, t.DLQMaxBytes = n, n, n
	}
	return t
}

// StreamConfigs lists every stream: the pipeline's (in order) followed by results,
// steps, telemetry, audit, feedback and the DLQ.
func (t Topology) StreamConfigs(pipeline []StreamSpec) []jetstream.StreamConfig {
	bound := func(n int64) int64 {
		if n <= 0 {
			return -1 // unlimited: only a hand-built Topology leaves a bound out
		}
		return n
	}
	s := func(name, desc string, subjects []string, ret jetstream.RetentionPolicy, age time.Duration, maxBytes int64, discard jetstream.DiscardPolicy) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   ret,
			MaxAge:      age,
			MaxBytes:    bound(maxBytes),
			Discard:     discard,
			Storage:     t.Storage,
			Replicas:    t.Replicas,
			Duplicates:  t.Duplicates,
		}
	}
	out := make([]jetstream.StreamConfig, 0, len(pipeline)+6)
	for _, p := range pipeline {
		if p.WorkQueue {
			out = append(out, s(p.Name, p.Description, p.Subjects, jetstream.WorkQueuePolicy, 0, t.WorkMaxBytes, jetstream.DiscardNew))
		} else {
			out = append(out, s(p.Name, p.Description, p.Subjects, jetstream.LimitsPolicy, t.RequestsMaxAge, t.WorkMaxBytes, jetstream.DiscardNew))
		}
	}
	old := jetstream.DiscardOld
	return append(out,
		s(schemas.StreamResults, "final job outcomes per tenant", []string{schemas.RootResults + ".>"}, jetstream.LimitsPolicy, t.ResultsMaxAge, t.ResultsMaxBytes, old),
		s(schemas.StreamSteps, "finished steps of chained jobs per tenant", []string{schemas.RootSteps + ".>"}, jetstream.LimitsPolicy, t.ResultsMaxAge, t.ResultsMaxBytes, old),
		s(schemas.StreamTelemetry, "stage runs and HTTP requests for the sink", []string{"studio.telemetry.>"}, jetstream.LimitsPolicy, t.ResultsMaxAge, t.TelemetryMaxBytes, old),
		s(schemas.StreamAudit, "audit trail", []string{"studio.audit.>"}, jetstream.LimitsPolicy, t.DLQMaxAge, t.AuditMaxBytes, old),
		s(schemas.StreamFeedback, "user feedback on results", []string{"studio.feedback"}, jetstream.LimitsPolicy, t.DLQMaxAge, t.FeedbackMaxBytes, old),
		s(schemas.StreamDLQ, "poison messages with reason, stage and attempts headers", []string{"studio.dlq.>"}, jetstream.LimitsPolicy, t.DLQMaxAge, t.DLQMaxBytes, old),
	)
}

// JetStream's error codes for a refused store: the stream is at a bound with
// DiscardNew (10077, "maximum bytes exceeded"), or the server has no storage left
// (10023).
const (
	errCodeStoreFailed           jetstream.ErrorCode = 10077
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// IsFull reports whether err is a publish refused for space: the stream reached its
// MaxBytes or MaxMsgs bound with DiscardNew, or JetStream ran out of storage. The
// publisher should refuse new work and have its caller retry later.
func IsFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeInsufficientResources:
		return true
	case errCodeStoreFailed:
		d := apiErr.Description
		return strings.Contains(d, "maximum bytes exceeded") || strings.Contains(d, "maximum messages exceeded")
	}
	return false
}

// Provision creates or updates every stream (the pipeline's, which the stage table
// processors.Stages declares, the rest, and ADVISORIES, see AdvisoryConfig) and the given KV buckets (each domain package
// declares its own; internal/topology lists them all), each with reads answered by its
// stream leader (see ProvisionKV). It is idempotent and safe to run
// from several processes at once.
func (t Topology) Provision(ctx context.Context, js jetstream.JetStream, pipeline []StreamSpec, buckets ...jetstream.KeyValueConfig) error {
	for _, cfg := range t.StreamConfigs(pipeline) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("streams: provision stream %s: %w", cfg.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateStream(ctx, t.AdvisoryConfig()); err != nil {
		return fmt.Errorf("streams: provision stream %s: %w", StreamAdvisories, err)
	}
	for _, cfg := range buckets {
		if _, err := ProvisionKV(ctx, js, cfg); err != nil {
			return err
		}
	}
	return nil
}

// ConsumerSpec describes a durable pull consumer the Runner drives: tiered (Filter set:
// one durable per tier, each filtered to that tier's subjects) or untiered (Filter nil:
// one durable named Durable, filtered to FilterSubjects).
type ConsumerSpec struct {
	Stream string
	// Durable names the consumer group; for a tiered spec the tier is appended
	// ("preprocess-premium").
	Durable string
	// Filter returns the filter subject for a tier; nil makes the spec untiered.
	Filter func(schemas.Tier) string
	// FilterSubjects limits an untiered consumer to these subjects; empty reads the
	// whole stream.
	FilterSubjects []string
	// Description is shown by `nats consumer info`.
	Description string
	// DeliverNew starts a new consumer at the stream's end instead of its start.
	DeliverNew bool
	// AckWait should exceed the stage's p99 processing time; the runner also sends
	// InProgress while a message is held.
	AckWait time.Duration
	// MaxDeliver bounds redeliveries; the last failure goes to the DLQ. 0 or -1 never
	// gives up (the sink, which must not lose rows while ClickHouse is down).
	MaxDeliver int
	// MaxAckPending bounds the messages one consumer group holds unacknowledged. It must
	// exceed the runner's MaxBatch, or a batch can never fill.
	MaxAckPending int
	// Timeout is the deadline of one Handle call (see Timeout); 0 sets none.
	Timeout time.Duration
}

// Tiered reports whether the spec has one durable per tier.
func (c ConsumerSpec) Tiered() bool { return c.Filter != nil }

// tiers lists the tiers with a durable; an untiered spec has one, "".
func (c ConsumerSpec) tiers() []schemas.Tier {
	if c.Tiered() {
		return schemas.Tiers
	}
	return []schemas.Tier{""}
}

// DurableFor returns the consumer name for a tier ("" for an untiered spec).
func (c ConsumerSpec) DurableFor(t schemas.Tier) string {
	if t == "" {
		return c.Durable
	}
	return c.Durable + "-" + string(t)
}

// Ensure creates or updates the consumers of every tier (one, keyed "", when untiered).
func (c ConsumerSpec) Ensure(ctx context.Context, js jetstream.JetStream) (map[schemas.Tier]jetstream.Consumer, error) {
	tiers := c.tiers()
	out := make(map[schemas.Tier]jetstream.Consumer, len(tiers))
	for _, tier := range tiers {
		cfg := jetstream.ConsumerConfig{
			Durable:       c.DurableFor(tier),
			Description:   c.Description,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       c.AckWait,
			MaxDeliver:    c.MaxDeliver,
			MaxAckPending: c.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}
		if c.DeliverNew {
			cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		switch {
		case c.Tiered():
			cfg.FilterSubject = c.Filter(tier)
		case len(c.FilterSubjects) == 1:
			cfg.FilterSubject = c.FilterSubjects[0]
		case len(c.FilterSubjects) > 1:
			cfg.FilterSubjects = c.FilterSubjects
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, c.Stream, cfg)
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
