// Package processors owns the pipeline's stage table (Stages): each stage's stream,
// consumers, next subject and schema, sizing and progress, declared once and read by
// the topology, the wiring in internal/app and the README. It also turns a pipeline Step
// into a streams.Handler: it decodes job events, skips cancelled jobs, keeps the job
// record's stage, percent and timings current, routes each result to the next stage's
// subject with an idempotent message id, and emits telemetry. The stage packages
// (preprocess, inference, postprocess, store) only transform events.
package processors
