package streams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// benchEvent is a job event as it leaves inference: input, two artifacts, stamps.
func benchEvent() *schemas.JobEvent {
	at := time.Date(2026, 11, 24, 23, 29, 6, 352_000_000, time.UTC)
	sha := "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
	return &schemas.JobEvent{
		Schema: "studio.job.inferred/v1", JobID: "01m87y8fsf3s0bdd33tjmpqkzm", Tenant: "local", User: "local",
		Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "small",
		Params: map[string]any{"threshold": 0.5},
		Input:  schemas.ObjectRef{Key: "inputs/local/01m87y8fsf3s0bdd33tjmpqkzm/original.png", Size: 791555, SHA256: sha, ContentType: "image/png", Width: 512, Height: 512},
		Artifacts: map[string]schemas.ObjectRef{
			"tensor": {Key: "work/01m87y8fsf3s0bdd33tjmpqkzm/input.f32", Size: 12582912, SHA256: sha, ContentType: "application/octet-stream", Shape: []int64{1, 3, 1024, 1024}, DType: "float32"},
			"output": {Key: "work/01m87y8fsf3s0bdd33tjmpqkzm/output.f32", Size: 4194304, SHA256: sha, ContentType: "application/octet-stream", Shape: []int64{1, 1, 1024, 1024}, DType: "float32"},
		},
		Image:       &schemas.ImageInfo{Format: "png", Width: 512, Height: 512},
		TraceParent: "00-a29335801584f0a2d86a6e8a5f51ee5b-b7ad6b7169203331-01",
		SubmittedAt: at,
		Stamps:      map[schemas.Stage]time.Time{schemas.StagePreprocess: at.Add(168 * time.Millisecond), schemas.StageInference: at.Add(5 * time.Second)},
	}
}

// BenchmarkJobEventJSON is the encode every stage does before publishing, and the
// decode the next stage does on receipt.
func BenchmarkJobEventJSON(b *testing.B) {
	ev := benchEvent()
	data, err := json.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			var got schemas.JobEvent
			if err := json.Unmarshal(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJobsUpdate is one compare-and-swap update of a job record in the KV bucket
// (get, decode, change, encode, update at the read revision), as each stage does twice
// per job.
func BenchmarkJobsUpdate(b *testing.B) {
	s := streamstest.Start(b)
	ctx := context.Background()
	jobStore, err := jobs.Open(ctx, s.JS)
	if err != nil {
		b.Fatal(err)
	}
	ev := benchEvent()
	rec := &schemas.JobRecord{ID: ev.JobID, Tenant: ev.Tenant, User: ev.User, Tier: ev.Tier, Task: ev.Task,
		Model: ev.Model, ModelVersion: ev.ModelVersion, Status: schemas.StatusQueued, Stage: schemas.StageIngest,
		Input: ev.Input, SubmittedAt: ev.SubmittedAt}
	if err := jobStore.Create(ctx, rec); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	stages := []schemas.Stage{schemas.StagePreprocess, schemas.StageInference, schemas.StagePostprocess, schemas.StageStore}
	i := 0
	for b.Loop() {
		i++
		stage := stages[i%len(stages)]
		_, err := jobStore.Update(ctx, rec.ID, func(r *schemas.JobRecord) error {
			if r.Stages == nil {
				r.Stages = map[schemas.Stage]*schemas.StageTiming{}
			}
			r.Status, r.Stage = schemas.StatusRunning, stage
			r.Stages[stage] = &schemas.StageTiming{StartedAt: time.Now().UTC(), Attempts: 1, Worker: "bench", BatchSize: 1}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublish is a stage's publish: one ~1 KB event plus its telemetry record,
// sent asynchronously, then waiting for both PubAcks (streams.JSPublisher), with
// message ids for de-duplication.
func BenchmarkPublish(b *testing.B) {
	s := streamstest.Start(b)
	ctx := context.Background()
	pub := streams.JSPublisher{JS: s.JS}
	data, err := json.Marshal(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	tel := []byte(`{"schema":"studio.telemetry.stage_run/v1","job_id":"01m87y8fsf3s0bdd33tjmpqkzm","stage":"inference","outcome":"ok","duration_ms":5012.3}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("bench-%d", i)
		if err := pub.Publish(ctx,
			streams.Output{Subject: schemas.TelemetrySubject(schemas.StageInference), MsgID: id + ":event", Data: data},
			streams.Output{Subject: schemas.TelemetrySubject(schemas.StageInference), MsgID: id + ":telemetry", Data: tel},
		); err != nil {
			b.Fatal(err)
		}
	}
}
