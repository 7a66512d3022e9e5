package quota

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

// KV buckets of the per-user and per-tenant limits.
const (
	// BucketActive: "<tenant>.<user>" -> ActiveSet, the user's queued or running jobs.
	BucketActive = "active"
	// BucketRateLimit: "<tenant>.<user>" -> WindowState.
	BucketRateLimit = "ratelimit"
)

// Buckets returns the KV buckets of the limits, stored and replicated as t says.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, TTL: ttl, Storage: t.Storage, Replicas: t.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(BucketActive, "jobs queued or running per user (the concurrency cap)", t.JobsMaxAge),
		// A window idle for longer than it spans holds nothing that still counts.
		kv(BucketRateLimit, "sliding-window request counts per user", RateWindow+RateWindow/RateSlots+time.Minute),
		kv(BucketStorage, "bytes each tenant stores in the object store, counted from it (the storage quota)", 0),
	}
}
