package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// styleModel is one loaded arbitrary-style graph (two image inputs) and the gate that
// bounds its concurrent runs.
type styleModel struct {
	once  sync.Once
	g     diffusion.Graph
	err   error
	gate  chan struct{}
	ready bool // set under Step.mu once g is loaded
}

// styleGraph returns the loaded graph of an arbitrary-style spec, loading it on first
// use; a failed load is retried by the next caller. Such graphs take two named inputs,
// so they load through the backend's multi-input graph API (diffusion.Opener).
func (s *Step) styleGraph(spec models.Spec) (*styleModel, error) {
	opener, ok := s.Backend.(diffusion.Opener)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot run multi-input graphs (arbitrary-style models need ONNX Runtime)", s.Backend.Device())
	}
	s.mu.Lock()
	if s.stylers == nil {
		s.stylers = map[string]*styleModel{}
	}
	m, ok := s.stylers[spec.ID()]
	if !ok {
		m = &styleModel{gate: make(chan struct{}, max(1, s.Config.SessionsPerModel))}
		s.stylers[spec.ID()] = m
	}
	s.mu.Unlock()
	m.once.Do(func() {
		start := time.Now()
		if m.g, m.err = opener.OpenGraph(spec.Path); m.err != nil {
			return
		}
		if m.err = checkStylePorts(spec, m.g); m.err != nil {
			_ = m.g.Close()
			return
		}
		if s.Observe != nil {
			s.Observe.ModelLoaded(spec.Name, spec.Version, time.Since(start))
		}
		if s.Log != nil {
			s.Log.WithFields(logrus.Fields{"model": spec.ID(), "device": s.Backend.Device(), "load_ms": time.Since(start).Milliseconds()}).Info("arbitrary-style model loaded")
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.err != nil {
		if s.stylers[spec.ID()] == m {
			delete(s.stylers, spec.ID())
		}
		return nil, m.err
	}
	m.ready = true
	return m, nil
}

// checkStylePorts compares the graph's inputs and outputs with the manifest: exactly
// the content and style inputs, float32, and the named output.
func checkStylePorts(spec models.Spec, g diffusion.Graph) error {
	want := map[string]bool{spec.Input.Name: true, spec.Style.Name: true}
	for _, p := range g.Inputs() {
		if !want[p.Name] {
			return fmt.Errorf("%s has an input %q the manifest does not name (input.name %q, style.name %q)", spec.Path, p.Name, spec.Input.Name, spec.Style.Name)
		}
		if p.Type != "float32" {
			return fmt.Errorf("%s: input %q is %s; this server feeds float32", spec.Path, p.Name, p.Type)
		}
		delete(want, p.Name)
	}
	for name := range want {
		return fmt.Errorf("%s has no input %q that the manifest names", spec.Path, name)
	}
	for _, p := range g.Outputs() {
		if p.Name == spec.Output.Name {
			return nil
		}
	}
	return fmt.Errorf("%s has no output %q (output.name)", spec.Path, spec.Output.Name)
}

// styleTransfer runs an arbitrary-style job: the content tensor and the style tensor
// preprocess wrote, one call, the stylised image as "output".
func (s *Step) styleTransfer(ctx context.Context, ev *schemas.JobEvent, spec models.Spec) error {
	load := func(name string, t models.Tensor) (artifact.Tensor, error) {
		ref, ok := ev.Artifacts[name]
		if !ok {
			return artifact.Tensor{}, processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "event has no preprocessed %s tensor", name)
		}
		x, err := artifact.LoadInput(ctx, s.Blobs, ref, t)
		if errors.Is(err, blob.ErrNotFound) {
			return x, processors.Permanent(schemas.StageInference, processors.CodeMissingObject, "preprocessed %s tensor is gone: %v", name, err)
		}
		return x, err
	}
	content, err := load("tensor", spec.Input)
	if err != nil {
		return err
	}
	style, err := load("style", *spec.Style)
	if err != nil {
		return err
	}
	m, err := s.styleGraph(spec)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "model %s cannot be loaded: %v", spec.ID(), err)
	}
	select {
	case m.gate <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-m.gate }()
	rctx, cancel := context.WithTimeout(ctx, s.runTimeout())
	defer cancel()
	start := time.Now()
	out, err := m.g.Run(rctx, map[string]diffusion.Value{
		spec.Input.Name: {Shape: content.Shape, Float32: content.Data},
		spec.Style.Name: {Shape: style.Shape, Float32: style.Data},
	})
	if err != nil {
		if rctx.Err() != nil {
			return fmt.Errorf("model %s: %w", spec.ID(), err) // timeout or drain: retried
		}
		return processors.Permanent(schemas.StageInference, processors.CodeInferenceFailed, "model %s failed on this input: %v", spec.ID(), err)
	}
	y, ok := out[spec.Output.Name]
	if !ok || y.Float32 == nil || len(y.Shape) != 4 || y.Shape[0] != 1 || y.Shape[1] != 3 {
		return processors.Permanent(schemas.StageInference, processors.CodeInferenceFailed, "model %s returned %q of shape %v; want a float32 [1, 3, H, W] image", spec.ID(), spec.Output.Name, y.Shape)
	}
	if s.Observe != nil {
		s.Observe.InferenceRun(spec.Name, spec.Version, s.Backend.Device(), time.Since(start))
	}
	return s.putOutput(ctx, ev, spec, artifact.Tensor{Shape: y.Shape, Data: y.Float32})
}

func (s *Step) closeStylers() error {
	var errs []error
	for id, m := range s.stylers {
		if m.ready {
			errs = append(errs, m.g.Close())
		}
		delete(s.stylers, id)
	}
	return errors.Join(errs...)
}
