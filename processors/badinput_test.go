package processors_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// settle bounds how long the preprocess stage may take to finish every message of a
// test, generous for -race on a busy 2-core machine.
const settle = 60 * time.Second

var requestSubject = schemas.RequestSubject(schemas.TierNormal, schemas.TaskRemoveBackground)

// pipeline is ingest plus the real preprocess stage (app.NewStage) on an embedded
// JetStream server, with the JetStream object store. No model is needed: preprocess only
// reads the model's tensor contract from the catalog.
type pipeline struct {
	srv    *streamstest.Server
	jobs   *jobs.Store
	blobs  *natsobj.ObjectStore
	ingest *ingest.Service
	stages []*app.Stage
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	return newPipelineWith(t, func(*app.Config) {})
}

// newPipelineWith is newPipeline with the configuration changed by set.
func newPipelineWith(t *testing.T, set func(*app.Config)) *pipeline {
	t.Helper()
	ctx := context.Background()
	s := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	jobStore, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	cfg := &app.Config{Worker: "test-preprocess", Concurrency: 2, DrainTimeout: 10 * time.Second}
	set(cfg)
	deps := app.Deps{Bus: &app.Bus{NC: s.NC, JS: s.JS}, Blobs: blobs, Catalog: cat, Log: quietLog()}
	// Built now so its consumers exist, run later so tests can arrange inputs first.
	stages, err := app.NewStage(ctx, cfg, schemas.StagePreprocess, deps)
	require.NoError(t, err)
	svc, err := app.NewIngest(ctx, cfg, deps, func(context.Context) error { return nil })
	require.NoError(t, err)
	return &pipeline{srv: s, jobs: jobStore, blobs: blobs, ingest: svc, stages: stages}
}

// run starts the preprocess stage; it is stopped and drained at cleanup.
func (p *pipeline) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunStages(ctx, p.stages) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stage stopped with an error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the preprocess stage did not drain within 30s")
		}
	})
}

func (p *pipeline) submit(t *testing.T, img []byte) *schemas.JobRecord {
	t.Helper()
	rec, err := p.ingest.Submit(context.Background(), ingest.SubmitRequest{Task: schemas.TaskRemoveBackground, Image: img})
	require.NoError(t, err)
	return rec
}

// upstream plays a system that publishes requests on NATS itself and so skips ingest's
// checks: it stores the bytes, creates the job record and publishes the event.
func (p *pipeline) upstream(t *testing.T, id, model string, img []byte) *schemas.JobRecord {
	t.Helper()
	ctx := context.Background()
	key := "inputs/local/" + id + "/original"
	info, err := p.blobs.Put(ctx, key, bytes.NewReader(img), int64(len(img)), "")
	require.NoError(t, err)
	rec := &schemas.JobRecord{
		ID: id, Tenant: "local", User: "upstream", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground,
		Model: model, ModelVersion: "small", Status: schemas.StatusQueued, Stage: schemas.StageIngest,
		Input: schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256}, SubmittedAt: time.Now().UTC(),
	}
	require.NoError(t, p.jobs.Create(ctx, rec))
	ev := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: id, Tenant: rec.Tenant, User: rec.User, Tier: rec.Tier,
		Task: rec.Task, Model: model, ModelVersion: "small", Input: rec.Input, SubmittedAt: rec.SubmittedAt,
	}
	data, err := json.Marshal(ev)
	require.NoError(t, err)
	require.NoError(t, streams.JSPublisher{JS: p.srv.JS}.Publish(ctx, streams.Output{
		Subject: requestSubject, MsgID: id + ":requested", Data: data, Header: nats.Header{"Studio-Job-Id": []string{id}},
	}))
	return rec
}

// msgs returns every message in a stream on subject.
func (p *pipeline) msgs(t *testing.T, stream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := p.srv.JS.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		if m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

// withHeader keeps the messages whose header key has value.
func withHeader(msgs []*jetstream.RawStreamMsg, key, value string) []*jetstream.RawStreamMsg {
	var out []*jetstream.RawStreamMsg
	for _, m := range msgs {
		if m.Header.Get(key) == value {
			out = append(out, m)
		}
	}
	return out
}

func (p *pipeline) dlq(t *testing.T) []*jetstream.RawStreamMsg {
	return p.msgs(t, schemas.StreamDLQ, schemas.DLQSubject(schemas.StagePreprocess))
}

func (p *pipeline) results(t *testing.T, jobID string) []schemas.ResultEvent {
	t.Helper()
	var out []schemas.ResultEvent
	for _, m := range p.msgs(t, schemas.StreamResults, schemas.ResultSubject("local", schemas.TaskRemoveBackground)) {
		var res schemas.ResultEvent
		require.NoError(t, json.Unmarshal(m.Data, &res))
		if res.JobID == jobID {
			out = append(out, res)
		}
	}
	return out
}

// endResults waits for a job's result events: a failed job's record is written before
// its result is published, so a test that saw the record must wait for the event.
func (p *pipeline) endResults(t *testing.T, jobID string) []schemas.ResultEvent {
	t.Helper()
	var out []schemas.ResultEvent
	streamstest.Eventually(t, settle, func() bool { out = p.results(t, jobID); return len(out) > 0 }, "job %s published no result event", jobID)
	return out
}

func (p *pipeline) preprocessed(t *testing.T, jobID string) []*jetstream.RawStreamMsg {
	t.Helper()
	all := p.msgs(t, schemas.StreamPreprocessed, schemas.PreprocessedSubject(schemas.TierNormal, "isnet"))
	return withHeader(all, "Studio-Job-Id", jobID)
}

// requireForwarded waits for a job's preprocessed event and checks it.
func (p *pipeline) requireForwarded(t *testing.T, rec *schemas.JobRecord, width, height int) {
	t.Helper()
	streamstest.Eventually(t, settle, func() bool { return len(p.preprocessed(t, rec.ID)) > 0 }, "job %s never reached %s", rec.ID, schemas.PreprocessedSubject(schemas.TierNormal, "isnet"))
	msgs := p.preprocessed(t, rec.ID)
	require.Len(t, msgs, 1)
	require.Equal(t, rec.ID+":inference", msgs[0].Header.Get("Nats-Msg-Id"))
	var ev schemas.JobEvent
	require.NoError(t, json.Unmarshal(msgs[0].Data, &ev))
	require.Equal(t, schemas.SchemaJobPreprocessed, ev.Schema)
	require.Equal(t, &schemas.ImageInfo{Format: "jpeg", Width: width, Height: height, Orientation: 1}, ev.Image)
	require.Equal(t, []int64{1, 3, 1024, 1024}, ev.Artifacts["tensor"].Shape)
	got, err := p.jobs.Get(context.Background(), rec.ID)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusRunning, got.Status, "a healthy job is not failed by its neighbours")
	require.Nil(t, got.Error)
	require.Empty(t, withHeader(p.dlq(t), "Studio-Job-Id", rec.ID))
	require.Empty(t, p.results(t, rec.ID))
}

func TestPreprocessFailsBadInputsWithoutHarmingGoodOnes(t *testing.T) {
	p := newPipeline(t)
	ctx := context.Background()

	tests := []struct {
		name    string
		arrange func(t *testing.T) *schemas.JobRecord
		code    string
		message string
	}{
		{"a truncated JPEG that passed ingest is corrupt", func(t *testing.T) *schemas.JobRecord {
			full := encodeJPEG(t, photoImage(640, 480))
			return p.submit(t, full[:len(full)/2])
		}, processors.CodeCorruptImage, "the JPEG file is damaged or incomplete"},
		{"a job whose input object was deleted is missing its object", func(t *testing.T) *schemas.JobRecord {
			rec := p.submit(t, encodeJPEG(t, photoImage(32, 32)))
			require.NoError(t, p.blobs.Delete(ctx, rec.Input.Key))
			return rec
		}, processors.CodeMissingObject, "is gone"},
		{"a GIF from an upstream publisher is unsupported", func(t *testing.T) *schemas.JobRecord {
			return p.upstream(t, "upstream-gif", "isnet", encodeGIF(t))
		}, processors.CodeUnsupportedImage, "GIF images are not supported"},
		{"a pixel bomb from an upstream publisher is too large", func(t *testing.T) *schemas.JobRecord {
			return p.upstream(t, "upstream-bomb", "isnet", pngHeaderOnly(100000, 100000))
		}, processors.CodeImageTooLarge, "100000x100000"},
		{"an upstream request for an unknown model cannot run", func(t *testing.T) *schemas.JobRecord {
			return p.upstream(t, "upstream-model", "nope", encodeJPEG(t, photoImage(32, 32)))
		}, processors.CodeModelUnavailable, "nope@small"},
	}
	// Everything is queued before the stage runs, so the deleted object is gone by the
	// time preprocess looks and the good job shares the stage with every bad one.
	bad := make([]*schemas.JobRecord, len(tests))
	for i, tt := range tests {
		bad[i] = tt.arrange(t)
	}
	good := p.submit(t, encodeJPEG(t, photoImage(640, 480)))
	p.run(t)

	t.Run("a valid photo submitted alongside reaches inference", func(t *testing.T) {
		p.requireForwarded(t, good, 640, 480)
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := bad[i].ID
			var rec *schemas.JobRecord
			streamstest.Eventually(t, settle, func() bool {
				var err error
				rec, err = p.jobs.Get(ctx, id)
				return err == nil && rec.Status == schemas.StatusFailed
			}, "job %s never failed", id)
			require.NotNil(t, rec.Error)
			require.Equal(t, tt.code, rec.Error.Code)
			require.Equal(t, schemas.StagePreprocess, rec.Error.Stage)
			require.Contains(t, rec.Error.Message, tt.message)
			require.NotContains(t, rec.Error.Message, "%!", "the message is formatted for people")
			require.False(t, rec.FinishedAt.IsZero())

			streamstest.Eventually(t, settle, func() bool { return len(withHeader(p.dlq(t), "Studio-Job-Id", id)) > 0 }, "job %s never reached the DLQ", id)
			dead := withHeader(p.dlq(t), "Studio-Job-Id", id)
			require.Len(t, dead, 1)
			require.Contains(t, dead[0].Header.Get(streams.HeaderDLQReason), "("+tt.code+")")
			require.Equal(t, string(schemas.StagePreprocess), dead[0].Header.Get(streams.HeaderDLQStage))
			require.Equal(t, requestSubject, dead[0].Header.Get(streams.HeaderDLQSubject))
			require.Equal(t, schemas.StreamRequests, dead[0].Header.Get(streams.HeaderDLQStream))
			var deadEv schemas.JobEvent
			require.NoError(t, json.Unmarshal(dead[0].Data, &deadEv), "the DLQ keeps the original event")
			require.Equal(t, id, deadEv.JobID)

			results := p.endResults(t, id)
			require.Len(t, results, 1, "exactly one result event")
			require.Equal(t, schemas.StatusFailed, results[0].Status)
			require.NotNil(t, results[0].Error)
			require.Equal(t, tt.code, results[0].Error.Code)

			require.Empty(t, p.preprocessed(t, id), "a failed job sends nothing downstream")
		})
	}
}

func TestPreprocessDeadLettersGarbageAndKeepsFlowing(t *testing.T) {
	p := newPipeline(t)
	ctx := context.Background()
	p.run(t)

	event := func(mutate func(*schemas.JobEvent)) []byte {
		ev := schemas.JobEvent{Schema: schemas.SchemaJobRequested, JobID: "no-such-job", Tenant: "local", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "small"}
		mutate(&ev)
		data, err := json.Marshal(ev)
		require.NoError(t, err)
		return data
	}
	tests := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"bytes that are not JSON", []byte("\x00\xffthis is not { json"), "is not a valid job event"},
		{"a JSON array", []byte(`[1, 2, 3]`), "is not a valid job event"},
		{"an event without a job id", event(func(ev *schemas.JobEvent) { ev.JobID = "" }), "missing job_id"},
		{"an event with an unknown tier", event(func(ev *schemas.JobEvent) { ev.Tier = "gold" }), `unknown tier "gold"`},
		{"an event whose tenant is not a subject token", event(func(ev *schemas.JobEvent) { ev.Tenant = "a.b" }), "tenant"},
		{"an event for a job that has no record", event(func(*schemas.JobEvent) {}), "has no record"},
	}
	seqs := make([]uint64, len(tests))
	for i, tt := range tests {
		ack, err := p.srv.JS.Publish(ctx, requestSubject, tt.data)
		require.NoError(t, err)
		seqs[i] = ack.Sequence
	}
	// Published after the garbage: it must still get through.
	good := p.submit(t, encodeJPEG(t, photoImage(200, 120)))

	for i, tt := range tests {
		t.Run(tt.name+" goes to the DLQ as a bad event", func(t *testing.T) {
			seq := fmt.Sprint(seqs[i])
			streamstest.Eventually(t, settle, func() bool { return len(withHeader(p.dlq(t), streams.HeaderDLQSeq, seq)) > 0 }, "message %s never reached the DLQ", seq)
			dead := withHeader(p.dlq(t), streams.HeaderDLQSeq, seq)
			require.Len(t, dead, 1)
			reason := dead[0].Header.Get(streams.HeaderDLQReason)
			require.Contains(t, reason, "("+processors.CodeBadEvent+")")
			require.Contains(t, reason, tt.reason)
			require.Equal(t, "1", dead[0].Header.Get(streams.HeaderDLQAttempts), "a bad event is not retried")
			require.Equal(t, tt.data, dead[0].Data, "the DLQ keeps the original bytes")
		})
	}
	t.Run("a valid job published after the garbage reaches inference", func(t *testing.T) {
		p.requireForwarded(t, good, 200, 120)
	})
	t.Run("the request consumer holds nothing back", func(t *testing.T) {
		spec, err := processors.Consumers(schemas.StagePreprocess, "")
		require.NoError(t, err)
		streamstest.Eventually(t, settle, func() bool {
			n, err := streams.Backlog(ctx, p.srv.JS, spec, schemas.TierNormal)
			return err == nil && n == 0
		}, "messages are still pending or unacknowledged on %s", spec.DurableFor(schemas.TierNormal))
	})
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// --- test images, generated so each case says exactly which bytes it uses ---

// photoImage is a gradient with noise, which compresses like a photo.
func photoImage(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			n := uint8(rng.IntN(32))
			img.SetNRGBA(x, y, color.NRGBA{uint8(x*255/w) ^ n, uint8(y*255/h) + n, uint8((x+y)*127/(w+h)) + n, 255})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}))
	return buf.Bytes()
}

func encodeGIF(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White}), nil))
	return buf.Bytes()
}

// pngHeaderOnly is a PNG whose valid IHDR claims w x h RGBA pixels, with no pixel data.
func pngHeaderOnly(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", ihdr)...)
	b = append(b, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(b, chunk("IEND", nil)...)
}
