// Package streams is the JetStream transport and knows no domain rule: the topology of
// streams and consumers, the embedded nats-server for single-process deployments and
// tests, the consume engine (Runner: durable pull consumers per priority tier, acks
// only after downstream publishes are confirmed, retries with backoff, a dead-letter
// queue, a bounded drain on shutdown), publishing, the NATS micro request server, and
// the one typed KV helper (kv.go) on which the domain packages (internal/jobs,
// internal/auth, internal/quota) build their stores.
package streams
