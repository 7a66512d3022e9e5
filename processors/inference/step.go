package inference

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/ocr"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// Config tunes the inference stage.
type Config struct {
	// SessionsPerModel is how many sessions of one model version run at once; batch-1
	// models get their parallelism from here (default 1).
	SessionsPerModel int
	// RunTimeout bounds one model run; a run past it is stopped and retried (default 2m).
	RunTimeout time.Duration
	// TileBatch is how many tiles of one image run per call for models with a dynamic
	// batch dimension; 0 picks DefaultTileBatch for the backend's device.
	TileBatch int
}

// DefaultTileBatch is the tiles per call on device ("cpu", "cuda:0"): 1 on the CPU,
// where batching tiles was slower (BenchmarkRealESRGANTileBatch: 9 tiles of a 512x512
// image took 2.23-2.30 s one per call, 2.46-2.48 s four per call, on 2 cores), and 4 on
// a GPU, where one call per tile leaves most of the device idle.
func DefaultTileBatch(device string) int {
	if device == "cpu" {
		return 1
	}
	return 4
}

// DefaultUNetBatch is the most UNet samples concurrent generate jobs share in one call
// on device when the manifest leaves diffusion.unet_batch out: 8 on a GPU (four guided
// images), where one image's step leaves most of the device idle; 1 (no sharing) on the
// CPU, where a UNet call is bound by arithmetic and sharing did not make a step per
// image cheaper at a real latent size (BenchmarkSharedDenoisingStep, BENCHMARKS.md).
func DefaultUNetBatch(device string) int {
	if device == "cpu" {
		return 1
	}
	return 8
}

// Step runs model sessions on preprocessed tensors. Sessions load lazily, once per
// model version per process, and are reused. Safe for concurrent use.
type Step struct {
	Blobs   blob.Store
	Catalog *models.Catalog
	Backend Backend
	Config  Config
	Log     logrus.FieldLogger
	// Observe, when set, is told about model runs, loads and batch sizes.
	Observe Observer
	// Progress, when set, is told after every denoising step of a generate job.
	Progress Progress

	mu        sync.Mutex
	pools     map[string]*pool
	dicts     map[string]*ocr.Dictionary
	diffusers map[string]*diffusionModel
	stylers   map[string]*styleModel
}

var _ processors.Step = (*Step)(nil)

// Observer is told about the inference stage's model work, for metrics
// (internal/metrics implements it; internal/app wires it). It is called from many
// goroutines and must not block.
type Observer interface {
	// InferenceRun reports one successful model call and its duration.
	InferenceRun(model, version, device string, d time.Duration)
	// ModelLoaded reports how long loading a model version's sessions took.
	ModelLoaded(model, version string, d time.Duration)
	// Batch reports how many events of one model a Process call got.
	Batch(model string, n int)
}

// Stage implements processors.Step.
func (s *Step) Stage() schemas.Stage { return schemas.StageInference }

// Process implements processors.Step.
func (s *Step) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	if s.Observe != nil {
		per := map[string]int{}
		for _, ev := range batch {
			per[ev.Model]++
		}
		for model, n := range per {
			s.Observe.Batch(model, n)
		}
	}
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	// Jobs of one version that takes a dynamic batch of fixed-size inputs run as one
	// call (dynamic batching); everything else runs job by job, in parallel.
	groups := map[string][]int{}
	for i, ev := range batch {
		if spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion); err == nil && batchable(spec) && len(batch) > 1 {
			groups[spec.ID()] = append(groups[spec.ID()], i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.one(ctx, ev)
		}()
	}
	for _, idx := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.batched(ctx, batch, idx, errs)
		}()
	}
	wg.Wait()
	return errs
}

func (s *Step) one(ctx context.Context, ev *schemas.JobEvent) error {
	if ev.Task == schemas.TaskGenerate {
		return s.generate(ctx, ev)
	}
	spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "%v", err)
	}
	if spec.Task == schemas.TaskOCR {
		return s.ocr(ctx, ev, spec)
	}
	if spec.TakesStyle() {
		return s.styleTransfer(ctx, ev, spec)
	}
	in, ok := ev.Artifacts["tensor"]
	if !ok {
		return processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "event has no preprocessed tensor")
	}
	x, err := artifact.LoadInput(ctx, s.Blobs, in, spec.Input)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return processors.Permanent(schemas.StageInference, processors.CodeMissingObject, "preprocessed tensor is gone: %v", err)
		}
		return err
	}
	used := spec
	y, err := s.run(ctx, spec, x)
	var jerr *schemas.JobError
	if errors.As(err, &jerr) {
		// A version that cannot load or run hands the job to its fallback, if the
		// fallback reads the same tensor.
		if fb, ok := s.Catalog.Fallback(spec); ok && sameInput(spec, fb) {
			if s.Log != nil {
				s.Log.WithError(err).WithFields(logrus.Fields{"job_id": ev.JobID, "model": spec.ID(), "fallback": fb.ID()}).Warn("model failed; running its fallback")
			}
			if y, err = s.run(ctx, fb, x); err == nil {
				ev.ModelVersion, used = fb.Version, fb
			}
		}
	}
	if err != nil {
		return err
	}
	return s.putOutput(ctx, ev, used, y)
}

// putOutput stores a model output for postprocess: as 8-bit pixels when it is an image
// or a mask (a quarter of the bytes, nothing lost that postprocess keeps), otherwise as
// float32.
func (s *Step) putOutput(ctx context.Context, ev *schemas.JobEvent, spec models.Spec, y artifact.Tensor) error {
	var (
		ref schemas.ObjectRef
		err error
	)
	if px, qerr := artifact.Quantize(y, spec.Output); qerr == nil {
		ref, err = artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/output.u8", px)
	} else {
		ref, err = artifact.PutTensor(ctx, s.Blobs, "work/"+ev.JobID+"/output.f32", y)
	}
	if err != nil {
		return err
	}
	ev.Artifacts["output"] = ref
	return nil
}

// run executes spec on x. Load and run failures are permanent errors (they trigger the
// fallback); a timeout is transient.
func (s *Step) run(ctx context.Context, spec models.Spec, x artifact.Tensor) (artifact.Tensor, error) {
	p, err := s.pool(spec)
	if err != nil {
		return artifact.Tensor{}, processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "model %s cannot be loaded: %v", spec.ID(), err)
	}
	sess, err := p.acquire(ctx)
	if err != nil {
		return artifact.Tensor{}, err
	}
	defer p.release(sess)
	rctx, cancel := context.WithTimeout(ctx, s.runTimeout())
	defer cancel()
	start := time.Now()
	var y artifact.Tensor
	if spec.Tile.Size > 0 {
		batch := 1
		if spec.DynamicBatch {
			batch = s.Config.TileBatch
			if batch <= 0 {
				batch = DefaultTileBatch(s.Backend.Device())
			}
		}
		y, err = RunTiled(rctx, sess.Run, x, spec.Tile.Size, spec.Tile.Overlap, spec.Scale, batch)
	} else {
		y, err = sess.Run(rctx, x)
	}
	if err != nil {
		if rctx.Err() != nil {
			return artifact.Tensor{}, fmt.Errorf("model %s: %w", spec.ID(), err) // timeout: retry
		}
		return artifact.Tensor{}, processors.Permanent(schemas.StageInference, processors.CodeInferenceFailed, "model %s failed on this input: %v", spec.ID(), err)
	}
	if s.Observe != nil {
		s.Observe.InferenceRun(spec.Name, spec.Version, s.Backend.Device(), time.Since(start))
	}
	return y, nil
}

func sameInput(a, b models.Spec) bool {
	return a.Input.Name == b.Input.Name && a.Input.Mean == b.Input.Mean && a.Input.Std == b.Input.Std &&
		a.Input.Resampling() == b.Input.Resampling() && a.Input.ColorManagement == b.Input.ColorManagement &&
		a.Input.Orientation == b.Input.Orientation && fmt.Sprint(a.Input.Shape) == fmt.Sprint(b.Input.Shape)
}

func (s *Step) runTimeout() time.Duration {
	if s.Config.RunTimeout > 0 {
		return s.Config.RunTimeout
	}
	return 2 * time.Minute
}

// Preload opens the sessions of spec now instead of on the first job, so readiness can
// wait for it.
func (s *Step) Preload(spec models.Spec) error {
	if spec.Task == schemas.TaskGenerate {
		_, err := s.pipeline(spec)
		return err
	}
	if spec.TakesStyle() {
		_, err := s.styleGraph(spec)
		return err
	}
	if _, err := s.pool(spec); err != nil {
		return err
	}
	for _, role := range slices.Sorted(maps.Keys(spec.Parts)) {
		part, err := spec.Part(role)
		if err != nil {
			return err
		}
		if _, err := s.pool(part); err != nil {
			return err
		}
	}
	return nil
}

// pool returns the session pool of spec, loading it on first use. Concurrent first
// callers wait for one load; a failed load is retried by the next caller.
func (s *Step) pool(spec models.Spec) (*pool, error) {
	s.mu.Lock()
	if s.pools == nil {
		s.pools = map[string]*pool{}
	}
	p, ok := s.pools[spec.ID()]
	if !ok {
		p = &pool{}
		s.pools[spec.ID()] = p
	}
	s.mu.Unlock()

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sessions != nil {
		return p, nil
	}
	n := max(1, s.Config.SessionsPerModel)
	start := time.Now()
	sessions := make(chan Session, n)
	for range n {
		sess, err := s.Backend.Open(spec)
		if err != nil {
			close(sessions)
			for o := range sessions {
				_ = o.Close()
			}
			return nil, err
		}
		sessions <- sess
	}
	p.sessions = sessions
	took := time.Since(start)
	if s.Observe != nil {
		s.Observe.ModelLoaded(spec.Name, spec.Version, took)
	}
	if s.Log != nil {
		s.Log.WithFields(logrus.Fields{"model": spec.ID(), "sessions": n, "device": s.Backend.Device(), "load_ms": took.Milliseconds()}).Info("model loaded")
	}
	return p, nil
}

// Close releases every loaded session.
func (s *Step) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := []error{s.closeDiffusers(), s.closeStylers()}
	for _, p := range s.pools {
		p.mu.Lock()
		if p.sessions != nil {
			for range cap(p.sessions) {
				errs = append(errs, (<-p.sessions).Close())
			}
			p.sessions = nil
		}
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Loaded lists the model ids with open sessions.
func (s *Step) Loaded() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, m := range s.diffusers {
		if m.ready {
			out = append(out, id)
		}
	}
	for id, m := range s.stylers {
		if m.ready {
			out = append(out, id)
		}
	}
	for id, p := range s.pools {
		p.mu.Lock()
		if p.sessions != nil {
			out = append(out, id)
		}
		p.mu.Unlock()
	}
	return out
}

type pool struct {
	mu       sync.Mutex
	sessions chan Session
}

func (p *pool) acquire(ctx context.Context) (Session, error) {
	select {
	case s := <-p.sessions:
		return s, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pool) release(s Session) { p.sessions <- s }

// batchable reports whether jobs of spec can share one model call.
func batchable(spec models.Spec) bool {
	return !spec.TakesStyle() && spec.DynamicBatch && spec.MaxBatch > 1 && spec.Tile.Size == 0 && spec.Input.H() > 0 && spec.Input.W() > 0
}

// batched runs the jobs batch[idx] (one model version) as a single call. If their
// tensors cannot be stacked or the call fails, each job runs alone, so one bad input
// never fails its neighbours and fallbacks still apply.
func (s *Step) batched(ctx context.Context, batch []*schemas.JobEvent, idx []int, errs []error) {
	alone := func() {
		for _, i := range idx {
			errs[i] = s.one(ctx, batch[i])
		}
	}
	if len(idx) == 1 {
		alone()
		return
	}
	spec, err := s.Catalog.Get(batch[idx[0]].Model, batch[idx[0]].ModelVersion)
	if err != nil {
		alone()
		return
	}
	xs := make([]artifact.Tensor, len(idx))
	for k, i := range idx {
		ref, ok := batch[i].Artifacts["tensor"]
		if !ok {
			alone()
			return
		}
		if xs[k], err = artifact.LoadInput(ctx, s.Blobs, ref, spec.Input); err != nil {
			alone()
			return
		}
	}
	x, ok := Stack(xs)
	if !ok {
		alone()
		return
	}
	y, err := s.run(ctx, spec, x)
	if err != nil {
		alone()
		return
	}
	ys, err := Unstack(y, len(idx))
	if err != nil {
		alone()
		return
	}
	for k, i := range idx {
		errs[i] = s.putOutput(ctx, batch[i], spec, ys[k])
	}
}
