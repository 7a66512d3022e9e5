// Package streams is the JetStream transport and knows no domain rule: the topology of
// streams and consumers (the pipeline's declared by the stage table, processors.Stages),
// the embedded nats-server for single-process deployments and tests, publishing, the
// NATS micro request server, the one typed KV helper (kv.go) on which the domain
// packages (internal/jobs, internal/auth, internal/quota) build their stores, and the
// one consume engine, Runner, on which every consumer runs (stages, sink, webhooks, slot
// release): durable pull consumers (one per priority tier, or one untiered), batching,
// acks only after downstream publishes are confirmed, InProgress for held messages, and
// a bounded drain on shutdown. Shared behaviour is middleware, one file each: Recover,
// Timeout, Retry, DeadLetters (the one DLQ writer), Observe and Tracing.
package streams
