package sink

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// BenchmarkDecode measures turning one telemetry or result event into its row, the
// sink's CPU cost per message before the insert.
func BenchmarkDecode(b *testing.B) {
	at := time.Date(2026, 12, 7, 18, 0, 0, 123456789, time.UTC)
	run, _ := json.Marshal(schemas.StageRun{
		Schema: schemas.SchemaStageRun, JobID: "01JF8Y4W3K8Z5Q2N7M6V4T9R0A", Tenant: "acme", User: "user-42",
		Tier: "premium", Task: "remove-background", Model: "isnet", ModelVersion: "small",
		Stage: schemas.StageInference, Worker: "host-1:1234", Attempt: 1, BatchSize: 4, Outcome: "ok",
		StartedAt: at, DurationMS: 123.456, QueueWaitMS: 7.5,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	for _, bc := range []struct {
		name   string
		stream string
		data   []byte
	}{
		{"stage_run", schemas.StreamTelemetry, run},
	} {
		var spec *streamSpec
		for i := range sinkStreams {
			if sinkStreams[i].stream == bc.stream {
				spec = &sinkStreams[i]
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := spec.decode("studio.telemetry.x", bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A TelemetryBatch of 256 runs, as the stages publish them: read by the scanner
	// (the sink's way) and by json.Unmarshal (its fallback); ns/row = ns/op / 256.
	runs := make([]schemas.StageRun, 256)
	for i := range runs {
		runs[i] = sampleRun(i)
	}
	batch, _ := json.Marshal(schemas.TelemetryBatch{Schema: schemas.SchemaTelemetryBatch, Producer: "w1", Seq: 1, StageRuns: runs})
	for _, bc := range []struct {
		name   string
		decode func([]byte) (decoded, error)
	}{{"telemetry_batch_256/scanner", decodeTelemetryBatch}, {"telemetry_batch_256/unmarshal", unmarshalTelemetryBatch}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
