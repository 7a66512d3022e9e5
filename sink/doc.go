// Package sink writes the pipeline's analytics events into ClickHouse: job results
// (RESULTS), stage runs and HTTP requests (TELEMETRY), the audit trail (AUDIT) and user
// feedback (FEEDBACK). It reads each stream with its own durable pull consumer
// (sink-results, sink-telemetry, sink-audit, sink-feedback), inserts in batches over
// the native protocol with clickhouse-go, and acknowledges messages only after their
// batch is committed. While ClickHouse is down, messages wait in their streams and the
// sink catches up when it returns.
//
// Duplicates: a message delivered twice (the sink died between commit and ack) writes
// nothing the second time, because each batch's ids are looked up before the insert;
// every table is also a ReplacingMergeTree keyed by the same id, and the cookbook
// queries read with FINAL, so even a rare race between replicas cannot double a count.
//
// The package also owns the schema (Migrate, numbered .sql files under migrations/),
// erasure requests (ALTER TABLE … DELETE of one user's rows) and the analyst cookbook
// (queries/*.sql). It does not import nats.go: a streams.Engine runs its consumers.
package sink
