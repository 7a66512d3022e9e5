// Package streams is the only package that talks to NATS. It declares the topology
// (streams, consumers, KV buckets, the object store), runs an embedded nats-server for
// single-process deployments and tests, keeps job records in KV, and runs every consumer
// (stages, sink, webhooks, slot release) on one engine, Runner: durable pull consumers
// (one per priority tier, or one untiered), batching, acks only after downstream
// publishes are confirmed, InProgress for held messages, and a bounded drain on
// shutdown. Shared behaviour is middleware, one file each: Recover, Timeout, Retry,
// DeadLetters (the one DLQ writer), Observe and Tracing.
package streams
