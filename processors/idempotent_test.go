package processors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/bench"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// stageInputs are the stream and subject root each stage consumes, in pipeline order.
var stageInputs = []struct {
	stage  schemas.Stage
	stream string
	root   string
}{
	{schemas.StagePreprocess, schemas.StreamRequests, schemas.RootRequests},
	{schemas.StageInference, schemas.StreamPreprocessed, schemas.RootPreprocessed},
	{schemas.StagePostprocess, schemas.StreamInferred, schemas.RootInferred},
	{schemas.StageStore, schemas.StreamPostprocessed, schemas.RootPostprocessed},
}

// whole is every stage of the pipeline, real steps and the real ONNX Runtime, on an
// embedded JetStream server; the model is the bench's 1x1 identity convolution. It
// records every message published to a stage's input subject, so a test can deliver it
// again.
type whole struct {
	srv    *streamstest.Server
	jobs   *jobs.Store
	blobs  *natsobj.ObjectStore
	ingest *ingest.Service
	stages map[schemas.Stage][]*app.Stage

	mu   sync.Mutex
	seen map[schemas.Stage][]*nats.Msg
}

func newWhole(t *testing.T) *whole {
	t.Helper()
	if testing.Short() {
		t.Skip("whole-pipeline test (ONNX Runtime) skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, bench.WriteIdentityModel(dir))
	cfg := &app.Config{
		Worker: "test-idem", Concurrency: 2, DrainTimeout: 10 * time.Second, Sessions: 1, Threads: 1,
		Device: "cpu", CacheDir: assets.DefaultDir(), ModelDir: dir, Models: bench.IdentityModel + "@" + bench.IdentityVersion,
		MaxUpload: 1 << 20, MaxPixels: 1 << 20,
	}
	log := quietLog()
	cat, err := app.Catalog(ctx, cfg, log)
	require.NoError(t, err)
	backend, err := app.Backend(ctx, cfg, log)
	require.NoError(t, err, "ONNX Runtime (run `studio fetch runtime`)")

	s := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	jobStore, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	deps := app.Deps{Bus: &app.Bus{NC: s.NC, JS: s.JS}, Blobs: blobs, Catalog: cat, Backend: backend, Log: log}
	w := &whole{srv: s, jobs: jobStore, blobs: blobs, stages: map[schemas.Stage][]*app.Stage{}, seen: map[schemas.Stage][]*nats.Msg{}}
	for _, in := range stageInputs {
		st, err := app.NewStage(ctx, cfg, in.stage, deps)
		require.NoError(t, err)
		w.stages[in.stage] = st
		sub, err := s.NC.Subscribe(in.root+".>", func(m *nats.Msg) {
			w.mu.Lock()
			w.seen[in.stage] = append(w.seen[in.stage], m)
			w.mu.Unlock()
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	require.NoError(t, s.NC.Flush())
	w.ingest, err = app.NewIngest(ctx, cfg, deps, func(context.Context) error { return nil })
	require.NoError(t, err)
	return w
}

// run starts the named stages; they are stopped and drained at cleanup.
func (w *whole) run(t *testing.T, names ...schemas.Stage) {
	t.Helper()
	var st []*app.Stage
	for _, n := range names {
		st = append(st, w.stages[n]...)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunStages(ctx, st) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stages %v stopped with an error: %v", names, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("stages %v did not drain within 30s", names)
		}
	})
}

// published is what was published to stage's input subject for job id.
func (w *whole) published(stage schemas.Stage, id string) []*nats.Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []*nats.Msg
	for _, m := range w.seen[stage] {
		if m.Header.Get("Studio-Job-Id") == id {
			out = append(out, m)
		}
	}
	return out
}

// redeliver publishes the first message stage received for job id again, under a new
// message id: what the stage sees when a worker died holding it after the stream's
// de-duplication window, or when an ack was lost.
func (w *whole) redeliver(t *testing.T, stage schemas.Stage, id, tag string) {
	t.Helper()
	msgs := w.published(stage, id)
	require.NotEmpty(t, msgs, "no %s message of job %s to deliver again", stage, id)
	m := msgs[0]
	h := nats.Header{}
	for k, v := range m.Header {
		if k != jetstream.MsgIDHeader {
			h[k] = v
		}
	}
	require.NoError(t, streams.JSPublisher{JS: w.srv.JS}.Publish(context.Background(), streams.Output{
		Subject: m.Subject, MsgID: fmt.Sprintf("%s:%s:again-%s", id, stage, tag), Data: m.Data, Header: h,
	}))
}

// drained waits until every consumer of the stages' input streams has handled all its
// messages (nothing pending, nothing unacknowledged).
func (w *whole) drained(t *testing.T, stages ...schemas.Stage) {
	t.Helper()
	ctx := context.Background()
	streamstest.Eventually(t, settle, func() bool {
		for _, in := range stageInputs {
			if !contains(stages, in.stage) {
				continue
			}
			st, err := w.srv.JS.Stream(ctx, in.stream)
			if err != nil {
				return false
			}
			lister := st.ListConsumers(ctx)
			for ci := range lister.Info() {
				if ci.NumPending > 0 || ci.NumAckPending > 0 {
					return false
				}
			}
			if lister.Err() != nil {
				return false
			}
		}
		return true
	}, "stages %v never handled every message", stages)
}

func contains(stages []schemas.Stage, s schemas.Stage) bool {
	for _, x := range stages {
		if x == s {
			return true
		}
	}
	return false
}

// count is the number of messages in a stream (0 when it has none).
func (w *whole) count(t *testing.T, stream string) uint64 {
	t.Helper()
	st, err := w.srv.JS.Stream(context.Background(), stream)
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func (w *whole) results(t *testing.T, id string) []schemas.ResultEvent {
	t.Helper()
	p := &pipeline{srv: w.srv}
	var out []schemas.ResultEvent
	for _, m := range p.msgs(t, schemas.StreamResults, schemas.ResultSubject("local", schemas.TaskStyleTransfer)) {
		var res schemas.ResultEvent
		require.NoError(t, json.Unmarshal(m.Data, &res))
		if res.JobID == id {
			out = append(out, res)
		}
	}
	return out
}

// TestRedeliveredStageMessagesNeverFailOrDoubleAJob delivers every stage's message of a
// job again: out of order while the job is in a later stage, and after it succeeded.
// Each is acked and dropped (or, before the next stage began, run again with its output
// de-duplicated): one result, no dead letter, no failure, the job's results intact, and
// its scratch artifacts removed only once it succeeded.
func TestRedeliveredStageMessagesNeverFailOrDoubleAJob(t *testing.T) {
	w := newWhole(t)
	ctx := context.Background()
	w.run(t, schemas.StagePreprocess, schemas.StageInference, schemas.StagePostprocess)
	rec, err := w.ingest.Submit(ctx, ingest.SubmitRequest{
		Task: schemas.TaskStyleTransfer, Model: bench.IdentityModel, Version: bench.IdentityVersion,
		Image: encodeJPEG(t, photoImage(24, 16)),
	})
	require.NoError(t, err)
	id := rec.ID

	// The store stage is not running: the job waits in POSTPROCESSED, its cursor at
	// postprocess, its tensor and model output in the scratch area.
	streamstest.Eventually(t, settle, func() bool { return len(w.published(schemas.StageStore, id)) == 1 }, "job %s never reached the store stage", id)
	w.drained(t, schemas.StagePreprocess, schemas.StageInference, schemas.StagePostprocess)
	got, err := w.jobs.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, schemas.StagePostprocess, got.Stage, "the cursor names the last stage begun")
	require.Equal(t, schemas.StatusRunning, got.Status)

	t.Run("an earlier stage's message delivered after a later stage began is dropped", func(t *testing.T) {
		w.redeliver(t, schemas.StagePreprocess, id, "early")
		w.drained(t, schemas.StagePreprocess)
		require.Len(t, w.published(schemas.StageInference, id), 1, "preprocess ran again for a job past it")
		w.redeliver(t, schemas.StageInference, id, "early")
		w.drained(t, schemas.StageInference)
		require.Len(t, w.published(schemas.StagePostprocess, id), 1, "inference ran again for a job past it")
		require.Zero(t, w.count(t, schemas.StreamDLQ), "a superseded message was dead-lettered")
		got, err := w.jobs.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, schemas.StatusRunning, got.Status)
		require.Nil(t, got.Error)
	})

	t.Run("the last stage's message delivered again before the next stage began runs again and publishes nothing twice", func(t *testing.T) {
		w.redeliver(t, schemas.StagePostprocess, id, "early")
		w.drained(t, schemas.StagePostprocess)
		require.Len(t, w.published(schemas.StageStore, id), 2, "postprocess did not run again")
		require.Equal(t, uint64(1), w.count(t, schemas.StreamPostprocessed), "the rerun's output was not de-duplicated")
		require.Zero(t, w.count(t, schemas.StreamDLQ))
	})

	w.run(t, schemas.StageStore)
	var res []schemas.ResultEvent
	streamstest.Eventually(t, settle, func() bool { res = w.results(t, id); return len(res) > 0 }, "job %s never got a result", id)
	require.Equal(t, schemas.StatusSucceeded, res[0].Status, "%+v", res[0].Error)
	done, err := w.jobs.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusSucceeded, done.Status)
	streamstest.Eventually(t, settle, func() bool {
		objs, err := w.blobs.List(ctx, "work/"+id+"/")
		return err == nil && len(objs) == 0
	}, "job %s succeeded but its scratch artifacts are still there", id)

	t.Run("every stage's message delivered again after the job succeeded is dropped", func(t *testing.T) {
		for _, in := range stageInputs {
			w.redeliver(t, in.stage, id, "late")
		}
		w.drained(t, processors.StageNames()...)
		// Each input so far: the first run's, the early redelivery (or postprocess's
		// rerun) and this one; a stage that ran again would add one downstream.
		for _, in := range stageInputs {
			require.Len(t, w.published(in.stage, id), 3, "a stage before %s ran again for a finished job", in.stage)
		}
		require.Len(t, w.results(t, id), 1, "a redelivery published a second result")
		require.Zero(t, w.count(t, schemas.StreamDLQ), "a redelivery of a finished job was dead-lettered")
		after, err := w.jobs.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, schemas.StatusSucceeded, after.Status)
		require.Nil(t, after.Error)
		require.Equal(t, done.Results, after.Results)
		for name, ref := range after.Results {
			rc, info, err := w.blobs.Get(ctx, ref.Key)
			require.NoError(t, err, "result %s", name)
			_, _ = io.Copy(io.Discard, rc)
			_ = rc.Close()
			require.Equal(t, ref.SHA256, info.SHA256, "result %s changed", name)
		}
	})
}

// TestAFailureOfASupersededMessageIsDroppedNotRecorded: a stage whose stale redelivery
// fails (its input consumed, its job ended) neither fails the job nor writes a dead
// letter; a failure of the job's current stage still fails it.
func TestAFailureOfASupersededMessageIsDroppedNotRecorded(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	store, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	missing := processors.Permanent(schemas.StageInference, processors.CodeMissingObject, "preprocessed tensor is gone")
	for _, tc := range []struct {
		name     string
		status   schemas.Status
		cursor   schemas.Stage
		jobError *schemas.JobError
		dropped  bool
	}{
		{"a job that succeeded is left alone", schemas.StatusSucceeded, schemas.StageStore, nil, true},
		{"a job a later stage has begun is left alone", schemas.StatusRunning, schemas.StagePostprocess, nil, true},
		{"a job cancelled is left alone", schemas.StatusCancelled, schemas.StageInference, nil, true},
		{"a job failed by another stage is left alone", schemas.StatusFailed, schemas.StagePostprocess, &schemas.JobError{Code: "x", Stage: schemas.StagePostprocess}, true},
		{"a job at this stage is failed", schemas.StatusRunning, schemas.StageInference, nil, false},
		{"a job this stage failed already is failed again (its result and dead letter are retried)", schemas.StatusFailed, schemas.StageInference, &schemas.JobError{Code: "x", Stage: schemas.StageInference}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("stale-%d", time.Now().UnixNano())
			rec := &schemas.JobRecord{ID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskUpscale,
				Status: tc.status, Stage: tc.cursor, Error: tc.jobError, SubmittedAt: time.Now().UTC()}
			require.NoError(t, store.Create(ctx, rec))
			h := processors.NewHandler(stageOnly(schemas.StageInference), store, streams.JSPublisher{JS: s.JS}, "test", quietLog())
			ev, _ := json.Marshal(schemas.JobEvent{Schema: schemas.SchemaJobPreprocessed, JobID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskUpscale})
			err := h.Fail(ctx, &streams.Msg{Subject: "studio.preprocessed.normal.x", Data: ev, Delivered: 2, Received: time.Now()}, missing)
			after, gerr := store.Get(ctx, id)
			require.NoError(t, gerr)
			if tc.dropped {
				require.True(t, errors.Is(err, streams.ErrSuperseded), "Fail = %v, want ErrSuperseded", err)
				require.Equal(t, tc.status, after.Status)
				require.Equal(t, tc.jobError, after.Error)
				return
			}
			require.NoError(t, err)
			require.Equal(t, schemas.StatusFailed, after.Status)
		})
	}
}

// stageOnly is a Step that names a stage and never runs.
type stageOnly schemas.Stage

func (s stageOnly) Stage() schemas.Stage { return schemas.Stage(s) }
func (s stageOnly) Process(context.Context, []*schemas.JobEvent) []error {
	panic("not run")
}

// TestSupersededComparesStepThenStage: a chained job runs the stages once per step, so
// a message is out of date only when the record's (step, stage) cursor is past the
// message's; between steps the cursor stands at the previous step's store.
func TestSupersededComparesStepThenStage(t *testing.T) {
	rec := func(step int, stage schemas.Stage, status schemas.Status) *schemas.JobRecord {
		return &schemas.JobRecord{ChainStep: step, Stage: stage, Status: status}
	}
	tests := []struct {
		name  string
		r     *schemas.JobRecord
		step  int
		stage schemas.Stage
		want  bool
	}{
		{"a final job supersedes every message", rec(0, schemas.StagePreprocess, schemas.StatusSucceeded), 1, schemas.StagePreprocess, true},
		{"a later stage of the same step supersedes", rec(0, schemas.StageInference, schemas.StatusRunning), 0, schemas.StagePreprocess, true},
		{"the same stage runs again", rec(0, schemas.StageInference, schemas.StatusRunning), 0, schemas.StageInference, false},
		{"the next step's first stage runs after the previous step's store", rec(0, schemas.StageStore, schemas.StatusRunning), 1, schemas.StagePreprocess, false},
		{"between steps the next step's preprocess is not superseded", rec(1, schemas.StageIngest, schemas.StatusRunning), 1, schemas.StagePreprocess, false},
		{"between steps the previous step's store runs again (it may not have published)", rec(1, schemas.StageIngest, schemas.StatusRunning), 0, schemas.StageStore, false},
		{"between steps the previous step's inference is superseded", rec(1, schemas.StageIngest, schemas.StatusRunning), 0, schemas.StageInference, true},
		{"once the next step began, the previous step's store is superseded", rec(1, schemas.StagePreprocess, schemas.StatusRunning), 0, schemas.StageStore, true},
		{"a later step's stages are never superseded by an earlier step's cursor", rec(0, schemas.StageStore, schemas.StatusRunning), 2, schemas.StagePreprocess, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := processors.Superseded(tt.r, tt.step, tt.stage); got != tt.want {
				t.Fatalf("Superseded(step %d %s, message step %d %s) = %v, want %v", tt.r.ChainStep, tt.r.Stage, tt.step, tt.stage, got, tt.want)
			}
		})
	}
}

// TestAStoreMessageThatRunsOutOfDeliveriesAfterTheJobSucceededPublishesItsResult: the
// store stage marks the record succeeded and then publishes the result event; when
// that publish is refused (a stream electing its leader) until the message's deliveries
// run out, the failure handler finds the job final. It must publish the result, or the
// job is final with no result event and its client waits for ever (cmd/studio TestChaos
// leader-kill found 2 such jobs). Called twice, the result is stored once.
func TestAStoreMessageThatRunsOutOfDeliveriesAfterTheJobSucceededPublishesItsResult(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	store, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	id := fmt.Sprintf("silent-%d", time.Now().UnixNano())
	results := map[string]schemas.ObjectRef{"image": {Key: "results/local/" + id + "/image.png", SHA256: "ab", Size: 3}}
	rec := &schemas.JobRecord{ID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground,
		Status: schemas.StatusSucceeded, Stage: schemas.StageStore, Percent: 100, Results: results,
		SubmittedAt: time.Now().UTC(), FinishedAt: time.Now().UTC()}
	require.NoError(t, store.Create(ctx, rec))
	h := processors.NewHandler(stageOnly(schemas.StageStore), store, streams.JSPublisher{JS: s.JS}, "test", quietLog())
	ev, _ := json.Marshal(schemas.JobEvent{Schema: schemas.SchemaJobPostprocessed, JobID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground})
	cause := fmt.Errorf("%w (5); the worker never finished it", streams.ErrMaxDeliveries)
	for range 2 {
		err := h.Fail(ctx, &streams.Msg{Subject: "studio.postprocessed.normal.x", Data: ev, Delivered: 5, Received: time.Now()}, cause)
		require.True(t, errors.Is(err, streams.ErrSuperseded), "Fail = %v, want ErrSuperseded (no dead letter)", err)
	}
	p := &pipeline{srv: s}
	got := p.results(t, id)
	require.Len(t, got, 1, "one result event for the succeeded job")
	require.Equal(t, schemas.StatusSucceeded, got[0].Status)
	after, err := store.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, schemas.StatusSucceeded, after.Status)
	require.Equal(t, results, after.Results)
	require.Empty(t, p.msgs(t, schemas.StreamDLQ, schemas.DLQSubject(schemas.StageStore)))
}
