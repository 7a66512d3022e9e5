//go:build cgo

// Package ort is the ONNX Runtime backend of the inference stage, through
// github.com/yalue/onnxruntime_go. The shared library is loaded from a path given at
// start-up (fetched and verified by `studio fetch`), once per process.
package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/onnx"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference"
)

// Config selects the runtime library and how sessions use the machine.
type Config struct {
	// LibraryPath is libonnxruntime.so.
	LibraryPath string
	// Device is "cpu", "cuda" or "auto" (CUDA when the library has the CUDA provider and
	// a GPU answers, else CPU).
	Device string
	// IntraOpThreads per session; 0 lets ONNX Runtime use every core.
	IntraOpThreads int
	// Spin lets idle intra-op threads busy-wait for the next task. It shaves latency on
	// a dedicated machine but burns CPU that preprocessing and other sessions need, so
	// it is off by default.
	Spin bool
}

var (
	initOnce sync.Once
	initErr  error
)

// Backend opens ONNX Runtime sessions. Safe for concurrent use.
type Backend struct {
	cfg      Config
	device   string
	fallback error
}

var _ inference.Backend = (*Backend)(nil)

// New loads the shared library (once per process) and returns a backend. With Device
// "cuda" it fails unless a CUDA session runs; with "auto" it settles on the CPU and
// Fallback says why.
func New(cfg Config) (*Backend, error) {
	if cfg.LibraryPath == "" {
		return nil, errors.New("ort: no ONNX Runtime library path: run `studio fetch` or set --ort-lib")
	}
	initOnce.Do(func() {
		ortgo.SetSharedLibraryPath(cfg.LibraryPath)
		initErr = ortgo.InitializeEnvironment(ortgo.WithLogLevelError())
	})
	if initErr != nil {
		return nil, fmt.Errorf("ort: load ONNX Runtime from %s: %w", cfg.LibraryPath, initErr)
	}
	b := &Backend{cfg: cfg, device: "cpu"}
	switch cfg.Device {
	case "", "cpu":
	case "cuda", "auto":
		err := probeCUDA(cfg.LibraryPath)
		if err == nil {
			b.device = "cuda:0"
			break
		}
		if cfg.Device == "cuda" {
			return nil, fmt.Errorf("ort: --device cuda requested but CUDA is unavailable: %w", err)
		}
		b.fallback = err
	default:
		return nil, fmt.Errorf("ort: unknown device %q (want auto, cpu or cuda)", cfg.Device)
	}
	return b, nil
}

// Device reports where sessions run.
func (b *Backend) Device() string { return b.device }

// Fallback is why Device "auto" settled on the CPU; nil when CUDA was picked or never
// asked for.
func (b *Backend) Fallback() error { return b.fallback }

// ErrNoCUDAProvider means the runtime library has no CUDA provider library beside it.
var ErrNoCUDAProvider = errors.New("no CUDA provider library beside the ONNX Runtime library")

// probeCUDA checks that the CUDA provider loads and a device runs a session: the
// provider library must sit beside lib, the provider must append (CUDA 13 runtime and
// cuDNN 9 found), and a one-node graph must run on it (a GPU answers).
func probeCUDA(lib string) error {
	provider := filepath.Join(filepath.Dir(lib), "libonnxruntime_providers_cuda.so")
	if _, err := os.Stat(provider); err != nil {
		// Without it the provider can only fail (noisily), so say what to fetch.
		return fmt.Errorf("%w: %s is missing; run `studio fetch runtime --gpu` and pass its libonnxruntime.so as --ort-lib", ErrNoCUDAProvider, provider)
	}
	o, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("CUDA provider options: %w (is %s a CUDA build of ONNX Runtime?)", err, lib)
	}
	defer o.Destroy()
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	if err := so.AppendExecutionProviderCUDA(o); err != nil {
		if why := loadError(provider); why != "" {
			err = fmt.Errorf("%w: %s", err, why)
		}
		return fmt.Errorf("CUDA provider did not load: %w; it needs the CUDA 13 runtime and cuDNN 9 on the library path (an NVIDIA CUDA 13 + cuDNN 9 image, see Dockerfile.cuda) and an NVIDIA driver", err)
	}
	return runProbeGraph(so)
}

// runProbeGraph runs Identity on one float with so's providers, so a machine whose CUDA
// libraries load but whose GPU does not answer is found at start-up, not at the first job.
func runProbeGraph(so *ortgo.SessionOptions) error {
	m := onnx.Model{Producer: "studio-probe", Graph: onnx.Graph{
		Name:    "probe",
		Inputs:  []onnx.ValueInfo{{Name: "x", Dims: onnx.Dims(1)}},
		Outputs: []onnx.ValueInfo{{Name: "y", Dims: onnx.Dims(1)}},
	}}
	m.Graph.Add("Identity", []string{"x"}, []string{"y"})
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(m.Marshal(), []string{"x"}, []string{"y"}, so)
	if err != nil {
		return fmt.Errorf("CUDA session: %w", err)
	}
	defer s.Destroy()
	in, err := ortgo.NewTensor(ortgo.NewShape(1), []float32{1})
	if err != nil {
		return err
	}
	defer in.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.Run([]ortgo.Value{in}, outs); err != nil {
		return fmt.Errorf("CUDA run: %w", err)
	}
	outs[0].Destroy()
	return nil
}

// sessionOptions are the options every session of this backend is created with; the
// caller destroys them.
func (b *Backend) sessionOptions() (*ortgo.SessionOptions, error) {
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	if b.cfg.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(b.cfg.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("ort: intra-op threads: %w", err)
		}
	}
	// ONNX Runtime's memory pattern keeps one planned block per input shape it has
	// seen, next to the arena. Measured on this project's CPU models: IS-Net small
	// resident 1.90 -> 0.96 GB and Real-ESRGAN (tiles of varying shape) 643 -> 472 MB
	// without it, at the same run time (832 vs 840 ms, 1.75 vs 1.74 s).
	if err := so.SetMemPattern(false); err != nil {
		return nil, fmt.Errorf("ort: memory pattern: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ort: inter-op threads: %w", err)
	}
	if !b.cfg.Spin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("ort: disable spinning: %w", err)
		}
	}
	if b.device != "cpu" {
		co, err := ortgo.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("ort: CUDA options: %w", err)
		}
		defer co.Destroy()
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return nil, fmt.Errorf("ort: CUDA provider: %w", err)
		}
	}
	ok = true
	return so, nil
}

// Open creates a session for spec.
func (b *Backend) Open(spec models.Spec) (inference.Session, error) {
	so, err := b.sessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	// A manifest's variant for this device (an fp16 file on CUDA) replaces the file.
	file := spec.PathFor(b.device)
	s, err := ortgo.NewDynamicAdvancedSession(file, []string{spec.Input.Name}, []string{spec.Output.Name}, so)
	if err != nil {
		return nil, fmt.Errorf("ort: load %s from %s: %w", spec.ID(), file, err)
	}
	return &session{s: s, spec: spec}, nil
}

type session struct {
	s    *ortgo.DynamicAdvancedSession
	spec models.Spec
}

// Run executes the model; cancelling ctx terminates the run inside ONNX Runtime.
func (s *session) Run(ctx context.Context, input artifact.Tensor) (artifact.Tensor, error) {
	in, err := ortgo.NewTensor(ortgo.NewShape(input.Shape...), input.Data)
	if err != nil {
		return artifact.Tensor{}, fmt.Errorf("ort: input tensor %v: %w", input.Shape, err)
	}
	defer in.Destroy()
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return artifact.Tensor{}, fmt.Errorf("ort: run options: %w", err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	defer stop()

	outs := []ortgo.Value{nil}
	if err := s.s.RunWithOptions([]ortgo.Value{in}, outs, ro); err != nil {
		if ctx.Err() != nil {
			return artifact.Tensor{}, fmt.Errorf("ort: %s run stopped: %w", s.spec.ID(), ctx.Err())
		}
		return artifact.Tensor{}, fmt.Errorf("ort: run %s: %w", s.spec.ID(), err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ortgo.Tensor[float32])
	if !ok {
		return artifact.Tensor{}, fmt.Errorf("ort: %s output %q is %T, want a float32 tensor", s.spec.ID(), s.spec.Output.Name, outs[0])
	}
	data := make([]float32, len(t.GetData()))
	copy(data, t.GetData())
	return artifact.Tensor{Shape: []int64(t.GetShape()), Data: data}, nil
}

func (s *session) Close() error { return s.s.Destroy() }
