package jobs

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

// KV buckets of this package.
const (
	// Bucket: "<job id>" -> schemas.JobRecord.
	Bucket = "jobs"
	// BucketCache: "<tenant>.<hash>" -> CacheEntry, identical input + task + model
	// version + params -> results.
	BucketCache = "cache"
	// BucketIndex: "<tenant>.<user>.<job>" -> IndexEntry; the per-user job index that
	// listing, webhooks and erasure read.
	BucketIndex = "userjobs"
	// BucketIdempotency: "k.<tenant>.<user>.<hash of the Idempotency-Key>" -> the claim
	// binding the key to a job (ingest); "b.<tenant>.<user>.<batch>" -> the claim on a
	// batch's completion webhook, so that one delivery goes out across replicas.
	BucketIdempotency = "idempotency"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered; a key reused later
// creates a new job.
const IdempotencyTTL = 24 * time.Hour

// Buckets returns the KV buckets of job state, sized by t: records and the index live
// as long as a job record (t.JobsMaxAge), cache entries as long as results.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, TTL: ttl, Storage: t.Storage, Replicas: t.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(Bucket, "job records: status, stage, percent, timings, results", t.JobsMaxAge),
		kv(BucketCache, "result cache: identical input + task + model version + params -> results", t.ResultsMaxAge),
		kv(BucketIndex, "index: the jobs of each user, with webhook targets, for listing, webhooks and erasure", t.JobsMaxAge),
		kv(BucketIdempotency, "Idempotency-Key -> job id, per tenant and user", IdempotencyTTL),
	}
}

// OpenIdempotency opens the bucket of Idempotency-Key claims, which Provision creates.
func OpenIdempotency(ctx context.Context, js jetstream.JetStream) (*streams.KV, error) {
	kv, err := streams.BindKV(ctx, js, BucketIdempotency)
	if err != nil {
		return nil, err
	}
	return streams.WrapKV(kv), nil
}
