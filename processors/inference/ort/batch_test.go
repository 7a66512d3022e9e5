//go:build cgo

package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

// unetCall is what one UNet run was fed.
type unetCall struct {
	batch, h, w int
	timesteps   []float64
	took        time.Duration
}

// countingOpener opens graphs with the ONNX Runtime backend and records every run of
// the UNet, so a test can count the calls jobs shared.
type countingOpener struct {
	*Backend
	mu    sync.Mutex
	calls []unetCall
	// together > 0 holds each text encoder run until that many have begun, so that
	// the jobs of a test start their denoising loops at the same time.
	together int
	entered  int
	released chan struct{}
	// failOver > 0 fails every UNet call of more samples, as a device out of memory
	// at a large batch would.
	failOver int
}

func (o *countingOpener) OpenGraph(path string) (diffusion.Graph, error) {
	g, err := o.Backend.OpenGraph(path)
	switch {
	case err != nil:
		return nil, err
	case strings.HasSuffix(path, filepath.FromSlash(diffusion.UNetFile)):
		return &countedGraph{Graph: g, o: o}, nil
	case strings.HasSuffix(path, filepath.FromSlash(diffusion.TextEncoderFile)) && o.together > 0:
		o.released = make(chan struct{})
		return &heldGraph{Graph: g, o: o}, nil
	}
	return g, nil
}

type heldGraph struct {
	diffusion.Graph
	o *countingOpener
}

func (g *heldGraph) Run(ctx context.Context, in map[string]diffusion.Value) (map[string]diffusion.Value, error) {
	g.o.mu.Lock()
	if g.o.entered++; g.o.entered == g.o.together {
		close(g.o.released)
	}
	g.o.mu.Unlock()
	select {
	case <-g.o.released:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Graph.Run(ctx, in)
}

func (o *countingOpener) recorded() []unetCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls)
}

type countedGraph struct {
	diffusion.Graph
	o *countingOpener
}

func (g *countedGraph) Run(ctx context.Context, in map[string]diffusion.Value) (map[string]diffusion.Value, error) {
	s := in["sample"].Shape
	c := unetCall{batch: int(s[0]), h: int(s[2]), w: int(s[3])}
	for _, v := range in["timestep"].Float32 {
		c.timesteps = append(c.timesteps, float64(v))
	}
	for _, v := range in["timestep"].Int64 {
		c.timesteps = append(c.timesteps, float64(v))
	}
	if g.o.failOver > 0 && c.batch > g.o.failOver {
		g.o.mu.Lock()
		g.o.calls = append(g.o.calls, c)
		g.o.mu.Unlock()
		return nil, errors.New("test: out of device memory")
	}
	start := time.Now()
	out, err := g.Graph.Run(ctx, in)
	c.took = time.Since(start)
	g.o.mu.Lock()
	g.o.calls = append(g.o.calls, c)
	g.o.mu.Unlock()
	return out, err
}

// openBatched opens dir with UNet sharing (maxBatch samples, window, no bound on the
// graph runs in flight) and counts the UNet calls; together > 0 starts that many jobs'
// loops at once (it holds the text encoder runs, so it needs unbounded runs).
func openBatched(t testing.TB, dir string, maxBatch int, window time.Duration, together int) (*diffusion.Pipeline, *countingOpener) {
	t.Helper()
	return openBatchedRuns(t, dir, diffusion.BatchOptions{MaxBatch: maxBatch, Window: window}, together)
}

func openBatchedRuns(t testing.TB, dir string, opts diffusion.BatchOptions, together int) (*diffusion.Pipeline, *countingOpener) {
	t.Helper()
	b, err := New(Config{LibraryPath: cpuLibrary(t), Device: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	o := &countingOpener{Backend: b, together: together}
	p, err := diffusion.Open(dir, o, diffusion.Options{Batch: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, o
}

// rows is how many UNet samples a request puts in each call.
func rows(r diffusion.Request) int {
	if r.Guidance > 1 {
		return 2 * r.Images
	}
	return r.Images
}

// jobsResult is what runJobs saw of each job.
type jobResult struct {
	digest string
	err    error
	steps  int
}

// runJobs runs reqs at once on p (opened with together = len(reqs), so that every job
// has joined before any asks for the UNet); cancelAt[i] > 0 cancels job i after that
// step.
func runJobs(p *diffusion.Pipeline, reqs []diffusion.Request, cancelAt []int) []jobResult {
	out := make([]jobResult, len(reqs))
	var all sync.WaitGroup
	begin := make(chan struct{})
	for i, r := range reqs {
		all.Add(1)
		go func() {
			defer all.Done()
			<-begin
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			res, err := p.Generate(ctx, r, func(step, _ int) error {
				out[i].steps = step
				if len(cancelAt) > i && cancelAt[i] == step {
					cancel()
				}
				return nil
			})
			out[i].err = err
			if err == nil {
				out[i].digest = digest(res.Pixels)
			}
		}()
	}
	close(begin)
	all.Wait()
	return out
}

// solo runs each request alone on an unshared pipeline: the reference pixels.
func solo(t *testing.T, dir string, reqs []diffusion.Request) []string {
	t.Helper()
	p, _ := openPipeline(t, dir)
	var sums []string
	for _, r := range reqs {
		res, err := p.Generate(context.Background(), r, nil)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, digest(res.Pixels))
	}
	return sums
}

func goldens(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "diffusion-golden.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if name, sum, ok := strings.Cut(line, "\t"); ok {
			want[name] = sum
		}
	}
	return want
}

func TestSharedUNetCalls(t *testing.T) {
	dir := testExport(t, diffusiontest.Options{})
	_, tok := openPipeline(t, dir)
	golden := goldens(t)["euler ancestral with guidance"]
	mixed := func() []diffusion.Request {
		a := request(tok, 4, 7.5) // the golden request
		b := request(tok, 3, 0)
		b.Seed, b.Cond = 7, tok.Encode("a dog")
		c := request(tok, 6, 3)
		c.Seed, c.Uncond = 9, tok.Encode("red")
		return []diffusion.Request{a, b, c}
	}

	for _, maxBatch := range []int{8, 4} {
		reqs := mixed()
		name := "three jobs at different steps share calls and each makes its solo pixels"
		if maxBatch == 4 {
			name = "with a max batch of 4 samples no call takes more"
		}
		t.Run(name, func(t *testing.T) {
			p, calls := openBatched(t, dir, maxBatch, 10*time.Second, len(reqs))
			got := runJobs(p, reqs, nil)
			want := solo(t, dir, reqs)
			if want[0] != golden {
				t.Fatalf("solo run of the golden request %s, golden %s", want[0], golden)
			}
			steps := 0
			for i, r := range got {
				if r.err != nil || r.digest != want[i] {
					t.Errorf("job %d: err %v, pixels %s, solo %s", i, r.err, r.digest, want[i])
				}
				steps += reqs[i].Steps
			}
			rec := calls.recorded()
			shared := 0
			for _, c := range rec {
				if c.batch > maxBatch {
					t.Errorf("a call took %d samples, max %d", c.batch, maxBatch)
				}
				if c.batch > rows(reqs[0]) && c.batch != rows(reqs[2]) {
					shared++
				}
			}
			if len(rec) >= steps || shared == 0 {
				t.Errorf("%d UNet calls (%d shared) for %d steps of 3 jobs: %v", len(rec), shared, steps, rec)
			}
			// Every job waits for the others at every step: one call per step of the
			// longest job when they all fit.
			if maxBatch == 8 && len(rec) != 6 {
				t.Errorf("%d UNet calls, want 6 (the longest job's steps): %v", len(rec), rec)
			}
			t.Logf("%d UNet calls for %d steps", len(rec), steps)
		})
	}

	t.Run("jobs of different sizes are not mixed and do not wait for each other", func(t *testing.T) {
		reqs := mixed()[:2]
		reqs[1].Width, reqs[1].Height = 32, 48
		// A window this long would show as a stall if a job waited for the other size.
		p, calls := openBatched(t, dir, 8, 10*time.Second, len(reqs))
		start := time.Now()
		got := runJobs(p, reqs, nil)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("two jobs of different sizes took %v: one waited for the other", d)
		}
		want := solo(t, dir, reqs)
		for i, r := range got {
			if r.err != nil || r.digest != want[i] {
				t.Errorf("job %d: err %v, pixels %s, solo %s", i, r.err, r.digest, want[i])
			}
		}
		for _, c := range calls.recorded() {
			if want := rows(reqs[0]); c.h == 8 && c.batch != want {
				t.Errorf("a 64x64 call took %d samples, want %d (one job's)", c.batch, want)
			}
			if want := rows(reqs[1]); c.h == 6 && c.batch != want {
				t.Errorf("a 32x48 call took %d samples, want %d (one job's)", c.batch, want)
			}
		}
	})

	t.Run("cancelling one job leaves the others' pixels and pace alone", func(t *testing.T) {
		reqs := mixed()
		for i := range reqs {
			reqs[i].Steps = 8
		}
		// Nothing but every job waiting (or one leaving) starts a call in time.
		p, calls := openBatched(t, dir, 8, 10*time.Second, len(reqs))
		start := time.Now()
		got := runJobs(p, reqs, []int{0, 2, 0})
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v: the others waited for the cancelled job", d)
		}
		if !errors.Is(got[1].err, context.Canceled) || got[1].steps != 2 {
			t.Errorf("cancelled job: err %v after %d steps, want context.Canceled after 2", got[1].err, got[1].steps)
		}
		want := solo(t, dir, reqs)
		for _, i := range []int{0, 2} {
			if got[i].err != nil || got[i].digest != want[i] {
				t.Errorf("job %d: err %v, pixels %s, solo %s", i, got[i].err, got[i].digest, want[i])
			}
		}
		t.Logf("UNet calls: %v", calls.recorded())
	})

	t.Run("a shared call that fails is retried job by job, and every job still succeeds", func(t *testing.T) {
		reqs := mixed()
		p, calls := openBatched(t, dir, 8, 10*time.Second, len(reqs))
		calls.failOver = 2
		got := runJobs(p, reqs, nil)
		want := solo(t, dir, reqs)
		for i, r := range got {
			if r.err != nil || r.digest != want[i] {
				t.Errorf("job %d: err %v, pixels %s, solo %s", i, r.err, r.digest, want[i])
			}
		}
		failed := 0
		for _, c := range calls.recorded() {
			if c.batch > 2 {
				failed++
			}
		}
		if failed == 0 {
			t.Errorf("no shared call was tried: %v", calls.recorded())
		}
	})

	t.Run("with one graph run at a time (--sessions 1) jobs still finish with their solo pixels", func(t *testing.T) {
		reqs := mixed()
		p, calls := openBatchedRuns(t, dir, diffusion.BatchOptions{MaxBatch: 8, Window: 5 * time.Millisecond, Calls: 1}, 0)
		got := runJobs(p, reqs, nil)
		want := solo(t, dir, reqs)
		for i, r := range got {
			if r.err != nil || r.digest != want[i] {
				t.Errorf("job %d: err %v, pixels %s, solo %s", i, r.err, r.digest, want[i])
			}
		}
		t.Logf("%d UNet calls for 13 steps", len(calls.recorded()))
	})

	t.Run("a job alone calls the UNet at once and makes the golden pixels", func(t *testing.T) {
		p, calls := openBatched(t, dir, 8, 10*time.Second, 0)
		start := time.Now()
		res, err := p.Generate(context.Background(), request(tok, 4, 7.5), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v: a lone job waited for the window", d)
		}
		if got := digest(res.Pixels); got != golden {
			t.Errorf("pixels %s, golden %s", got, golden)
		}
		if n := len(calls.recorded()); n != 4 {
			t.Errorf("%d UNet calls, want 4", n)
		}
	})
}

// TestSharedUNetCallsScalarTimestep: an export whose timestep is a scalar takes one
// timestep per call, so only jobs at the same timestep share a call.
func TestSharedUNetCallsScalarTimestep(t *testing.T) {
	dir := testExport(t, diffusiontest.Options{TimestepScalar: true})
	_, tok := openPipeline(t, dir)
	a := request(tok, 4, 7.5)
	b := request(tok, 4, 7.5)
	b.Seed = 8
	c := request(tok, 5, 0) // timesteps 801 601 401 201 1: only the last is also a and b's
	c.Seed = 9
	reqs := []diffusion.Request{a, b, c}
	p, calls := openBatched(t, dir, 8, 10*time.Second, len(reqs))
	got := runJobs(p, reqs, nil)
	want := solo(t, dir, reqs)
	for i, r := range got {
		if r.err != nil || r.digest != want[i] {
			t.Errorf("job %d: err %v, pixels %s, solo %s", i, r.err, r.digest, want[i])
		}
	}
	shared := 0
	for _, call := range calls.recorded() {
		if len(call.timesteps) != 1 {
			t.Fatalf("a call fed %d timesteps to a scalar input", len(call.timesteps))
		}
		// a and b give 2 samples each, c 1: 3 or 5 mixes c with them.
		if (call.batch == 3 || call.batch == 5) && call.timesteps[0] != 1 {
			t.Errorf("a call of %d samples at timestep %v mixed jobs at different timesteps", call.batch, call.timesteps[0])
		}
		if call.batch >= 4 {
			shared++
		}
	}
	if shared != 4 {
		t.Errorf("jobs a and b, in step, shared %d calls, want all 4: %v", shared, calls.recorded())
	}
}

// TestSharedUNetCallsInt64Timestep: with an int64 timestep the shared call gets one
// int64 per sample, and the golden DDIM request keeps its golden pixels.
func TestSharedUNetCallsInt64Timestep(t *testing.T) {
	dir := testExport(t, diffusiontest.Options{Scheduler: "DDIMScheduler", TimestepInt64: true})
	_, tok := openPipeline(t, dir)
	a := request(tok, 4, 7.5) // the golden request
	b := request(tok, 3, 7.5)
	b.Seed = 5
	reqs := []diffusion.Request{a, b}
	p, calls := openBatched(t, dir, 8, 10*time.Second, len(reqs))
	got := runJobs(p, reqs, nil)
	want := solo(t, dir, reqs)
	if g := goldens(t)["ddim with guidance and an int64 timestep"]; got[0].digest != g {
		t.Errorf("golden request batched: pixels %s, golden %s", got[0].digest, g)
	}
	if got[1].err != nil || got[1].digest != want[1] {
		t.Errorf("second job: err %v, pixels %s, solo %s", got[1].err, got[1].digest, want[1])
	}
	rec := calls.recorded()
	if len(rec) != 4 || rec[0].batch != 4 || len(rec[0].timesteps) != 4 || rec[0].timesteps[0] == rec[0].timesteps[2] {
		t.Errorf("UNet calls %v, want 4, the first of both jobs with their own timesteps", rec)
	}
}

// BenchmarkSharedDenoisingStep runs k concurrent 20-step generations of the test
// export (guidance on: 2 samples per job and step) and reports the seconds of one
// denoising step per image: the median time between two progress reports of a job,
// divided by the k jobs whose step it shared. k=1 is the unshared pipeline; k=2 and 4
// share their UNet calls (a call takes all k jobs when they run in step). It also
// reports the UNet call alone, median seconds per sample, and the samples per call.
// Graph runs are not bounded here (as with --sessions >= 2).
func BenchmarkSharedDenoisingStep(b *testing.B) {
	dir := testExport(b, diffusiontest.Options{})
	for _, size := range []int{64, 512} {
		for _, k := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("size=%d/jobs=%d", size, k), func(b *testing.B) {
				maxBatch := 2 * k
				if k == 1 {
					maxBatch = 1 // unshared
				}
				p, calls := openBatched(b, dir, maxBatch, 5*time.Millisecond, 0)
				tok, err := diffusion.LoadTokenizer(dir)
				if err != nil {
					b.Fatal(err)
				}
				r := request(tok, 20, 7.5)
				r.Width, r.Height = size, size
				var mu sync.Mutex
				var steps []time.Duration
				for b.Loop() {
					var wg sync.WaitGroup
					for j := range k {
						wg.Add(1)
						go func() {
							defer wg.Done()
							rj := r
							rj.Seed = uint32(j)
							var own []time.Duration
							var last time.Time
							if _, err := p.Generate(context.Background(), rj, func(step, _ int) error {
								now := time.Now()
								if step > 1 { // the first interval holds the text encoder
									own = append(own, now.Sub(last))
								}
								last = now
								return nil
							}); err != nil {
								b.Error(err)
							}
							mu.Lock()
							steps = append(steps, own...)
							mu.Unlock()
						}()
					}
					wg.Wait()
				}
				slices.Sort(steps)
				if len(steps) > 0 {
					b.ReportMetric(steps[len(steps)/2].Seconds()/float64(k), "s/step/image")
				}
				// What the UNet calls alone cost, median per sample, and how full they were.
				samples, perSample := 0, []float64{}
				rec := calls.recorded()
				for _, c := range rec {
					samples += c.batch
					perSample = append(perSample, c.took.Seconds()/float64(c.batch))
				}
				slices.Sort(perSample)
				b.ReportMetric(float64(samples)/float64(len(rec)), "samples/call")
				b.ReportMetric(perSample[len(perSample)/2], "unet-s/sample")
			})
		}
	}
}
