// Package streams is the only package that talks to NATS. It declares the topology
// (streams, consumers, KV buckets, the object store), runs an embedded nats-server for
// single-process deployments and tests, keeps job records in KV, and runs pipeline stages
// through Runner: durable pull consumers per priority tier, acks only after downstream
// publishes are confirmed, retries with backoff, a dead-letter queue, and a bounded
// drain on shutdown.
package streams
