// Package jsonschema holds the JSON Schema (draft 2020-12) files exported from the Go
// types in package schemas, for publishers and subscribers written in other languages.
// The files are generated: `go test ./schemas/jsonschema -update` rewrites them, and
// the same test fails while a committed file differs from what the types say.
package jsonschema

import (
	"embed"
	"fmt"
)

// Files are the committed schema files, one per wire type (job-request.json, ...).
//
//go:embed *.json
var Files embed.FS

// File returns one schema file by name ("job-request.json").
func File(name string) ([]byte, error) {
	b, err := Files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("jsonschema: no schema file %q: %w", name, err)
	}
	return b, nil
}

// Names of the exported files and the types they describe.
const (
	JobRequest     = "job-request.json"     // schemas.JobRequest: POST /v1/jobs JSON, studio.submit.<task>
	SubmitReply    = "submit-reply.json"    // schemas.SubmitReply: the reply on studio.submit.<task>
	Problem        = "problem.json"         // schemas.Problem: every error body and error reply
	JobEvent       = "job-event.json"       // schemas.JobEvent: studio.requests/preprocessed/inferred/postprocessed
	ResultEvent    = "result-event.json"    // schemas.ResultEvent: studio.results.<tenant>.<task>
	StageRun       = "stage-run.json"       // schemas.StageRun: studio.telemetry.<stage>
	JobRecord      = "job-record.json"      // schemas.JobRecord: KV bucket jobs
	Feedback       = "feedback.json"        // schemas.Feedback: studio.feedback
	AuditEvent     = "audit-event.json"     // schemas.AuditEvent: studio.audit.<action>
	ErasureRequest = "erasure-request.json" // schemas.ErasureRequest: studio.audit.erasure
	HTTPRequest    = "http-request.json"    // schemas.HTTPRequest: studio.telemetry.http
	OCRResult      = "ocr-result.json"      // schemas.OCRResult: an ocr job's text.json result
	BatchRequest   = "batch-request.json"   // schemas.BatchRequest: POST /v2/batches JSON, studio.submit.batch.<task>
	BatchReply     = "batch-reply.json"     // schemas.BatchReply: the reply on studio.submit.batch.<task>
	BatchCompleted = "batch-completed.json" // schemas.BatchCompleted: the batch webhook's body
	ReplayResult   = "replay-result.json"   // schemas.ReplayResult: studio.telemetry.replay
	StepEvent      = "step-event.json"      // schemas.StepEvent: studio.steps.<tenant>.<task>
	TelemetryBatch = "telemetry-batch.json" // schemas.TelemetryBatch: studio.telemetry.batch
	AuditBatch     = "audit-batch.json"     // schemas.AuditBatch: studio.audit.batch
)
