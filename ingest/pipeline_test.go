package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// gatedStep is a pipeline stage whose work the test releases job by job: each job
// waits for one token on gate. It runs under the real stage machinery
// (processors.Handler on a streams.Runner), so job records, skips of cancelled jobs,
// timings and result events are the production ones; only the pixel work is left out.
// The store stage writes a real result object so downloads work.
type gatedStep struct {
	stage schemas.Stage
	gate  chan struct{}
	open  <-chan struct{} // closed: every job passes
	blobs *natsobj.ObjectStore
	fail  *atomic.Bool // set: every job fails here for good
}

var _ processors.Step = (*gatedStep)(nil)

func (g *gatedStep) Stage() schemas.Stage { return g.stage }

func (g *gatedStep) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	errs := make([]error, len(batch))
	for i, ev := range batch {
		select {
		case <-g.gate:
		case <-g.open:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		if g.fail.Load() {
			errs[i] = processors.Permanent(g.stage, "test_failure", "the test fails every job at %s", g.stage)
			continue
		}
		if g.stage == schemas.StageStore {
			var buf bytes.Buffer
			if err := png.Encode(&buf, gridImage(4, 4)); err != nil {
				errs[i] = err
				continue
			}
			data := buf.Bytes()
			key := "results/" + ev.Tenant + "/" + ev.JobID + "/cutout.png"
			info, err := g.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "image/png")
			if err != nil {
				errs[i] = err
				continue
			}
			ev.Artifacts = map[string]schemas.ObjectRef{"cutout": {Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: "image/png", Width: 4, Height: 4}}
		}
	}
	return errs
}

// pipeline is ingest with the four stages as gated steps.
type pipeline struct {
	*env
	gates map[schemas.Stage]chan struct{}
	open  chan struct{}
	// failing makes the inference stage fail every job for good while it is set.
	failing atomic.Bool
	opened  sync.Once
	runners []*streams.Runner
	ctx     context.Context
	wg      sync.WaitGroup
	started sync.Once
	stop    func()
}

// newPipeline wires ingest (with the real queue depth of the preprocess consumers) and
// the four stages; runAll starts them. Every gate starts closed: release(stage, n) lets
// n jobs through, openAll everything.
func newPipeline(t *testing.T, cfg ingest.Config) *pipeline {
	t.Helper()
	return newPipelineWithLog(t, cfg, quietLog())
}

// newPipelineWithLog is newPipeline whose ingest service logs to log.
func newPipelineWithLog(t *testing.T, cfg ingest.Config, log logrus.FieldLogger) *pipeline {
	t.Helper()
	var depth ingest.QueueDepth
	var e *env
	spec, err := processors.Consumers(schemas.StagePreprocess, "")
	require.NoError(t, err)
	depth = func(ctx context.Context, tier schemas.Tier) (int, error) {
		return streams.Backlog(ctx, e.srv.JS, spec, tier)
	}
	e = newEnvWithLog(t, cfg, depth, log)
	p := &pipeline{env: e, gates: map[schemas.Stage]chan struct{}{}, open: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	p.ctx = ctx
	pub := streams.JSPublisher{JS: e.srv.JS}
	for _, st := range processors.StageNames() {
		gate := make(chan struct{}, 64)
		p.gates[st] = gate
		model := ""
		if st == schemas.StageInference {
			model = "isnet"
		}
		cs, err := processors.Consumers(st, model)
		require.NoError(t, err)
		cs.AckWait = 5 * time.Second
		fail := new(atomic.Bool)
		if st == schemas.StageInference {
			fail = &p.failing
		}
		h := processors.NewHandler(&gatedStep{stage: st, gate: gate, open: p.open, blobs: e.blobs, fail: fail}, e.jobs, pub, "test-"+string(st), quietLog())
		r, err := streams.NewRunner(ctx, e.srv.NC, e.srv.JS, h, streams.RunnerConfig{
			Stage: st, Worker: "test", Spec: cs, Concurrency: 1, DrainTimeout: 5 * time.Second,
			OnFailure: h.Fail, Log: quietLog(), PullExpiry: time.Second,
		})
		require.NoError(t, err)
		p.runners = append(p.runners, r)
	}
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			cancel()
			p.openAll() // let blocked work finish so the drain is quick
			p.wg.Wait()
		})
	}
	t.Cleanup(p.stop)
	return p
}

// runAll starts the four stages.
func (p *pipeline) runAll() {
	p.started.Do(func() {
		for _, r := range p.runners {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_ = r.Run(p.ctx)
			}()
		}
	})
}

func (p *pipeline) release(st schemas.Stage, n int) {
	for range n {
		p.gates[st] <- struct{}{}
	}
}

// openAll lets every job through every stage from now on.
func (p *pipeline) openAll() { p.opened.Do(func() { close(p.open) }) }

// submitPNG posts a small PNG and returns the v1 job.
func (e *env) submitPNG(t *testing.T, extra ...part) ingest.JobResponse {
	t.Helper()
	parts := append([]part{file(encodePNG(t, gridImage(3, 3))), field("task", "remove-background")}, extra...)
	r := e.submit(t, parts...)
	require.Equal(t, 202, r.status, "body: %s", r.body)
	var job ingest.JobResponse
	require.NoError(t, json.Unmarshal(r.body, &job))
	return job
}

// waitStatus polls the job record until it has status st.
func (e *env) waitStatus(t *testing.T, id string, st schemas.Status) *schemas.JobRecord {
	t.Helper()
	var rec *schemas.JobRecord
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		rec, err = e.jobs.Get(context.Background(), id)
		require.NoError(t, err)
		if rec.Status == st {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("job %s is %s, want %s", id, rec.Status, st)
	return nil
}
