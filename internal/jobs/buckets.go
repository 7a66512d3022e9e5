package jobs

import (
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
	// BucketIndex: "<tenant>.<user>.<job>" -> submission time; the per-user job index
	// that listing and erasure read.
	BucketIndex = "userjobs"
)

// Buckets returns the KV buckets of job state, sized by t: records and the index live
// as long as a job record (t.JobsMaxAge), cache entries as long as results.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, TTL: ttl, Storage: t.Storage, Replicas: t.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(Bucket, "job records: status, stage, percent, timings, results", t.JobsMaxAge),
		kv(BucketCache, "result cache: identical input + task + model version + params -> results", t.ResultsMaxAge),
		kv(BucketIndex, "index: the jobs of each user, for listing and erasure", t.JobsMaxAge),
	}
}
