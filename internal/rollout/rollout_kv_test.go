package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func catalog(t *testing.T) *models.Catalog {
	t.Helper()
	c := models.NewCatalog()
	for _, v := range []string{"a", "b"} {
		if err := c.Add(models.Spec{Manifest: models.Manifest{Name: "m", Version: v, Task: schemas.TaskUpscale, Default: v == "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// recorder keeps every notified transition.
type recorder struct {
	mu sync.Mutex
	ts []rollout.Transition
}

func (r *recorder) Notify(_ context.Context, _ *rollout.Rollout, t rollout.Transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ts = append(r.ts, t)
}

func (r *recorder) states() []rollout.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rollout.State
	for _, t := range r.ts {
		out = append(out, t.To)
	}
	return out
}

// publishResults stores n results of version on RESULTS, failed ones first, each with
// an inference time of ms.
func publishResults(t *testing.T, js jetstream.JetStream, version string, n, failed int, ms float64) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		e := schemas.ResultEvent{Schema: schemas.SchemaJobResult, JobID: version + time.Now().Format("150405.000000000"), Tenant: "t1",
			Task: schemas.TaskUpscale, Model: "m", ModelVersion: version, Status: schemas.StatusSucceeded, FinishedAt: time.Now(),
			DurationsMS: map[schemas.Stage]float64{schemas.StageInference: ms}}
		if i < failed {
			e.Status, e.Error = schemas.StatusFailed, &schemas.JobError{Code: "inference_failed"}
		}
		data, _ := json.Marshal(e)
		if _, err := js.Publish(ctx, schemas.ResultSubject("t1", schemas.TaskUpscale), data); err != nil {
			t.Fatal(err)
		}
	}
}

func setup(t *testing.T) (*streamstest.Server, *rollout.Store, *rollout.Manager, *recorder) {
	srv := streamstest.Start(t)
	store, err := rollout.Open(context.Background(), srv.JS)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := &rollout.Manager{Store: store, Catalog: catalog(t), Source: rollout.StreamSource{JS: srv.JS}, Notify: rec}
	return srv, store, m, rec
}

func controller(srv *streamstest.Server, store *rollout.Store, n rollout.Notifier) *rollout.Controller {
	return &rollout.Controller{Store: store, Source: rollout.StreamSource{JS: srv.JS}, Notify: n}
}

func TestManagerRefusesBadRequestsWithReasons(t *testing.T) {
	_, _, m, _ := setup(t)
	ctx := context.Background()
	cases := []struct {
		name string
		req  rollout.Request
		want error
	}{
		{"a target without a version", rollout.Request{Task: schemas.TaskUpscale, To: "m"}, rollout.ErrInvalid},
		{"a version the catalog lacks", rollout.Request{Task: schemas.TaskUpscale, To: "m@zz"}, rollout.ErrInvalid},
		{"a version of another task", rollout.Request{Task: schemas.TaskOCR, To: "m@b"}, rollout.ErrInvalid},
		{"the version already serving", rollout.Request{Task: schemas.TaskUpscale, To: "m@a"}, rollout.ErrInvalid},
		{"steps that do not end at 100", rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Steps: []int{5, 50}}, rollout.ErrInvalid},
		{"steps that do not increase", rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Steps: []int{50, 5, 100}}, rollout.ErrInvalid},
		{"a hold that is no duration", rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Hold: "soon"}, rollout.ErrInvalid},
		{"a threshold out of range", rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Thresholds: rollout.Thresholds{LatencyRatio: 0.5}}, rollout.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := m.Start(ctx, c.req); !errors.Is(err, c.want) {
				t.Errorf("Start = %v; want %v", err, c.want)
			}
		})
	}
	t.Run("a second rollout of the task waits for the first to end", func(t *testing.T) {
		if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b", By: "ops"}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b"}); !errors.Is(err, rollout.ErrActive) {
			t.Errorf("second Start = %v; want ErrActive", err)
		}
		if _, err := m.Resume(ctx, schemas.TaskUpscale, "ops"); !errors.Is(err, rollout.ErrState) {
			t.Errorf("Resume of a pending rollout = %v; want ErrState", err)
		}
		if r, err := m.Abort(ctx, schemas.TaskUpscale, "ops"); err != nil || r.State != rollout.StateAborted {
			t.Fatalf("Abort = %v, %v", r, err)
		}
		if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b"}); err != nil {
			t.Errorf("Start after an abort = %v", err)
		}
		h, err := m.Store.History(ctx, schemas.TaskUpscale)
		if err != nil || len(h) != 2 {
			t.Errorf("history: %d rollouts, %v; want 2", len(h), err)
		}
	})
}

func TestWatchedWeightsReachEveryReplica(t *testing.T) {
	srv := streamstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, _ := rollout.Open(ctx, srv.JS)
	var cats []*models.Catalog
	done := make(chan error, 2)
	for _, js := range srv.Replicas(t, 2) {
		c := catalog(t)
		cats = append(cats, c)
		go func() { done <- rollout.WatchRouting(ctx, js, c.SetRouting) }()
	}
	routed := func(c *models.Catalog, want string) bool {
		s, err := c.Resolve(schemas.TaskUpscale, "", "", 0.99)
		return err == nil && s.Version == want
	}
	for _, w := range []struct {
		weights map[string]int
		want    string
	}{{map[string]int{"a": 0, "b": 100}, "b"}, {map[string]int{"a": 50, "b": 50}, "b"}, {map[string]int{"a": 100, "b": 0}, "a"}} {
		if err := store.SetRouting(ctx, schemas.TaskUpscale, "m", "r1", w.weights); err != nil {
			t.Fatal(err)
		}
		for i, c := range cats {
			streamstest.Eventually(t, 5*time.Second, func() bool {
				r, ok := c.RoutingFor(schemas.TaskUpscale)
				return ok && r.Weights["a"] == w.weights["a"] && r.Weights["b"] == w.weights["b"] && routed(c, w.want)
			}, "replica %d never saw %v", i, w.weights)
		}
	}
	cancel()
	for range cats {
		if err := <-done; err != nil {
			t.Errorf("WatchRouting = %v", err)
		}
	}
}

func TestControllerPromotesAGoodCanaryAndRollsABadOneBack(t *testing.T) {
	srv, store, m, rec := setup(t)
	ctx := context.Background()
	c := controller(srv, store, rec)
	th := rollout.Thresholds{MinSamples: 10}
	r, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Steps: []int{10, 100}, Hold: "1s", Thresholds: th, By: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	tick := func() {
		t.Helper()
		if err := c.Tick(ctx); err != nil {
			t.Fatalf("Tick = %v", err)
		}
	}
	tick() // pending -> running at 10%
	tab, ok, _ := store.Routing(ctx, schemas.TaskUpscale)
	if !ok || tab.Weights["b"] != 10 || tab.Weights["a"] != 90 || tab.Rollout != r.ID {
		t.Fatalf("routing after the first step: %+v", tab)
	}
	publishResults(t, srv.JS, "a", 20, 0, 100)
	publishResults(t, srv.JS, "b", 12, 0, 110)
	time.Sleep(1100 * time.Millisecond) // the hold
	tick()                              // clean hold -> 100%
	publishResults(t, srv.JS, "b", 12, 0, 120)
	time.Sleep(1100 * time.Millisecond)
	tick() // clean hold at 100%, judged against stable's baseline -> promoted
	got, _ := m.Get(ctx, schemas.TaskUpscale)
	if got.State != rollout.StatePromoted || len(got.Timeline) != 4 {
		t.Fatalf("state %s, timeline %+v", got.State, got.Timeline)
	}
	if got.Baseline == nil || got.Baseline.Jobs != 20 || got.Timeline[3].Canary.Jobs != 12 {
		t.Errorf("baseline %+v, last canary figures %+v", got.Baseline, got.Timeline[3].Canary)
	}
	if tab, _, _ := store.Routing(ctx, schemas.TaskUpscale); tab.Weights["b"] != 100 || tab.Weights["a"] != 0 {
		t.Errorf("routing after promotion: %v", tab.Weights)
	}

	// The promoted version is now stable; a bad next version fails 3 of 12 jobs.
	if err := m.Catalog.Add(models.Spec{Manifest: models.Manifest{Name: "m", Version: "c", Task: schemas.TaskUpscale}}); err != nil {
		t.Fatal(err)
	}
	r2, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@c", Hold: "1h", Thresholds: th, By: "ops"})
	if err != nil || r2.Stable != "b" {
		t.Fatalf("second rollout %+v, %v; want stable b", r2, err)
	}
	tick()
	publishResults(t, srv.JS, "c", 12, 3, 100)
	tick() // a hard breach rolls back at once, long before the hour's hold
	got, _ = m.Get(ctx, schemas.TaskUpscale)
	last := got.Timeline[len(got.Timeline)-1]
	if got.State != rollout.StateRolledBack || last.Canary.Failed != 3 || last.Weight != 0 {
		t.Fatalf("state %s, last transition %+v", got.State, last)
	}
	if tab, _, _ := store.Routing(ctx, schemas.TaskUpscale); tab.Weights["b"] != 100 || tab.Weights["c"] != 0 {
		t.Errorf("routing after the rollback: %v", tab.Weights)
	}
	want := []rollout.State{"pending", "running", "running", "promoted", "pending", "running", "rolled-back"}
	if s := rec.states(); len(s) != len(want) {
		t.Errorf("notified %v; want %v", s, want)
	}
}

func TestControllerPausesOnSlowCanaryAndResumes(t *testing.T) {
	srv, store, m, rec := setup(t)
	ctx := context.Background()
	c := controller(srv, store, rec)
	if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Steps: []int{50, 100}, Hold: "1h", Thresholds: rollout.Thresholds{MinSamples: 10}}); err != nil {
		t.Fatal(err)
	}
	c.Tick(ctx)
	publishResults(t, srv.JS, "a", 10, 0, 100)
	publishResults(t, srv.JS, "b", 10, 0, 300)
	c.Tick(ctx)
	got, _ := m.Get(ctx, schemas.TaskUpscale)
	if got.State != rollout.StatePaused || got.Weight != 50 {
		t.Fatalf("state %s weight %d; want paused at 50", got.State, got.Weight)
	}
	if tab, _, _ := store.Routing(ctx, schemas.TaskUpscale); tab.Weights["b"] != 50 {
		t.Errorf("a pause changed the weights: %v", tab.Weights)
	}
	c.Tick(ctx) // a paused rollout stays paused
	if got, _ := m.Get(ctx, schemas.TaskUpscale); got.State != rollout.StatePaused {
		t.Fatalf("state %s after another look", got.State)
	}
	r, err := m.Resume(ctx, schemas.TaskUpscale, "ops")
	if err != nil || r.State != rollout.StateRunning || !r.StepStartedAt.After(got.StepStartedAt) {
		t.Fatalf("Resume = %+v, %v", r, err)
	}
	c.Tick(ctx) // the slow results are before the new window: nothing to judge yet
	if got, _ := m.Get(ctx, schemas.TaskUpscale); got.State != rollout.StateRunning {
		t.Errorf("state %s after resuming; want running", got.State)
	}
}

func TestANewControllerResumesMidStep(t *testing.T) {
	srv, store, m, rec := setup(t)
	ctx := context.Background()
	first := controller(srv, store, rec)
	if _, err := m.Start(ctx, rollout.Request{Task: schemas.TaskUpscale, To: "m@b", Steps: []int{10, 60, 100}, Hold: "1s", Thresholds: rollout.Thresholds{MinSamples: 5}}); err != nil {
		t.Fatal(err)
	}
	first.Tick(ctx)
	publishResults(t, srv.JS, "a", 5, 0, 100)
	publishResults(t, srv.JS, "b", 5, 0, 100)
	time.Sleep(1100 * time.Millisecond)
	first.Tick(ctx) // now at 60%, then the first controller's process is killed
	mid, _ := m.Get(ctx, schemas.TaskUpscale)
	if mid.Step != 1 || mid.Weight != 60 {
		t.Fatalf("step %d weight %d; want step 2 at 60%%", mid.Step, mid.Weight)
	}

	second := controller(srv, store, rec)
	publishResults(t, srv.JS, "a", 5, 0, 100)
	publishResults(t, srv.JS, "b", 5, 0, 100)
	streamstest.Eventually(t, 5*time.Second, func() bool {
		second.Tick(ctx)
		got, _ := m.Get(ctx, schemas.TaskUpscale)
		return got.Step == 2
	}, "the second controller never moved the stored step on")
	got, _ := m.Get(ctx, schemas.TaskUpscale)
	// The second controller continued the stored step: its window began when the first
	// controller started it, so the step advanced instead of starting over.
	last := got.Timeline[len(got.Timeline)-1]
	if got.Step != 2 || got.Weight != 100 || !got.StepStartedAt.After(mid.StepStartedAt) || last.Canary == nil || last.Canary.Jobs != 5 {
		t.Fatalf("after the takeover: step %d weight %d, last transition %+v", got.Step, got.Weight, last)
	}
}
