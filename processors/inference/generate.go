package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// ErrJobEnded is returned by a Progress hook when the job was cancelled or failed
// while it ran: the generation stops after the step in flight and the job moves on
// without output, to be skipped by the next stage.
var ErrJobEnded = errors.New("inference: the job ended while it ran")

// Progress is told after each denoising step of a generate job (step of steps). It
// may block briefly (a job-record update); returning ErrJobEnded stops the job.
type Progress func(ctx context.Context, ev *schemas.JobEvent, step, steps int) error

// diffusionModel is one loaded export and the gate that bounds its concurrent runs.
type diffusionModel struct {
	once  sync.Once
	p     *diffusion.Pipeline
	err   error
	gate  chan struct{}
	ready bool // set under Step.mu once p is loaded
	// blackedOut counts the images of this model the safety checker blacked out.
	blackedOut atomic.Int64
}

// SafetyObserver is an Observer that also counts images the safety checker blacked out
// (optional: the step logs them either way).
type SafetyObserver interface {
	ImagesBlackedOut(model, version string, n int)
}

// BlackedOut returns how many images of the model id (name@version) the safety checker
// blacked out since it was loaded.
func (s *Step) BlackedOut(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.diffusers[id]; ok {
		return m.blackedOut.Load()
	}
	return 0
}

// pipeline returns the loaded export of spec, loading it on first use; a failed load
// is retried by the next caller.
func (s *Step) pipeline(spec models.Spec) (*diffusionModel, error) {
	opener, ok := s.Backend.(diffusion.Opener)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot run multi-input graphs (text to image needs ONNX Runtime)", s.Backend.Device())
	}
	s.mu.Lock()
	if s.diffusers == nil {
		s.diffusers = map[string]*diffusionModel{}
	}
	opts := diffusion.Options{}
	if spec.Diffusion != nil {
		opts.Scheduler = spec.Diffusion.Scheduler
		opts.Batch = spec.Diffusion.Batch()
		opts.SafetyMode = spec.Diffusion.Safety
	}
	if opts.Batch.MaxBatch == 0 {
		opts.Batch.MaxBatch = DefaultUNetBatch(s.Backend.Device())
	}
	sessions := max(1, s.Config.SessionsPerModel)
	m, ok := s.diffusers[spec.ID()]
	if !ok {
		// With UNet sharing, up to unet_batch jobs run at once so that their steps can
		// share calls; the UNet calls in flight stay bounded by the sessions.
		m = &diffusionModel{gate: make(chan struct{}, max(sessions, opts.Batch.MaxBatch))}
		s.diffusers[spec.ID()] = m
	}
	s.mu.Unlock()
	opts.Batch.Calls = sessions
	m.once.Do(func() {
		start := time.Now()
		m.p, m.err = diffusion.Open(spec.Path, opener, opts)
		if m.err != nil {
			return
		}
		if s.Observe != nil {
			s.Observe.ModelLoaded(spec.Name, spec.Version, time.Since(start))
		}
		if s.Log != nil {
			s.Log.WithFields(logrus.Fields{"model": spec.ID(), "scheduler": m.p.Kind, "device": s.Backend.Device(), "unet_batch": opts.Batch.MaxBatch, "safety_checker": m.p.Safety(), "load_ms": time.Since(start).Milliseconds()}).Info("diffusion export loaded")
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.err != nil {
		if s.diffusers[spec.ID()] == m {
			delete(s.diffusers, spec.ID()) // the next job tries again
		}
		return nil, m.err
	}
	m.ready = true
	return m, nil
}

// generate runs a text-to-image job: the tokens preprocess wrote, the denoising loop
// with a progress report per step, and the images as 8-bit planes [N,3,H,W] ("output")
// for postprocess to encode.
func (s *Step) generate(ctx context.Context, ev *schemas.JobEvent) error {
	spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "%v", err)
	}
	g, err := spec.Generation(ev.Params)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeInvalidParams, "%v", err)
	}
	ref, ok := ev.Artifacts["tokens"]
	if !ok {
		return processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "generate event has no tokens from preprocess")
	}
	tokens, err := artifact.GetTensor(ctx, s.Blobs, ref)
	if err != nil {
		return err
	}
	if len(tokens.Data) != 2*diffusion.ContextLength {
		return processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "tokens have shape %v, want [2 %d]", tokens.Shape, diffusion.ContextLength)
	}
	ids := make([]int32, len(tokens.Data))
	for i, v := range tokens.Data {
		ids[i] = int32(v)
	}
	m, err := s.pipeline(spec)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "model %s cannot be loaded: %v", spec.ID(), err)
	}
	select {
	case m.gate <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-m.gate }()
	start := time.Now()
	req := diffusion.Request{
		Uncond: ids[:diffusion.ContextLength], Cond: ids[diffusion.ContextLength:],
		Seed: g.Seed, Steps: g.Steps, Guidance: g.Guidance, Width: g.Width, Height: g.Height, Images: g.Images,
	}
	res, err := m.p.Generate(ctx, req, func(step, steps int) error {
		if s.Progress == nil {
			return nil
		}
		return s.Progress(ctx, ev, step, steps)
	})
	switch {
	case errors.Is(err, ErrJobEnded):
		if s.Log != nil {
			s.Log.WithField("job_id", ev.JobID).Info("job ended while generating; stopped between steps")
		}
		return nil
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("model %s: %w", spec.ID(), err) // drain or deadline: retried
	case err != nil:
		return processors.Permanent(schemas.StageInference, processors.CodeInferenceFailed, "model %s failed: %v", spec.ID(), err)
	}
	if s.Observe != nil {
		s.Observe.InferenceRun(spec.Name, spec.Version, s.Backend.Device(), time.Since(start))
	}
	var flagged []int
	for i, f := range res.Flagged {
		if f {
			flagged = append(flagged, i)
		}
	}
	ev.Unsafe = flagged
	if len(flagged) > 0 {
		total := m.blackedOut.Add(int64(len(flagged)))
		if o, ok := s.Observe.(SafetyObserver); ok {
			o.ImagesBlackedOut(spec.Name, spec.Version, len(flagged))
		}
		if s.Log != nil {
			s.Log.WithFields(logrus.Fields{"job_id": ev.JobID, "model": spec.ID(), "images": flagged, "of": res.N, "blacked_out_total": total}).Warn("safety checker flagged images; they are blacked out")
		}
	}
	px := artifact.Pixels{Shape: []int64{int64(res.N), 3, int64(res.Height), int64(res.Width)}, Data: res.Pixels}
	out, err := artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/images.u8", px)
	if err != nil {
		return err
	}
	ev.Artifacts["output"] = out
	return nil
}

func (s *Step) closeDiffusers() error {
	var errs []error
	for id, m := range s.diffusers {
		if m.ready {
			errs = append(errs, m.p.Close())
		}
		delete(s.diffusers, id)
	}
	return errors.Join(errs...)
}
