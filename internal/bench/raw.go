package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/preprocess"
)

// tileBatch is the tiles per call the inference stage uses for spec under cfg on
// device.
func tileBatch(cfg *app.Config, spec models.Spec, device string) int {
	switch {
	case !spec.DynamicBatch:
		return 1
	case cfg.TileBatch > 0:
		return cfg.TileBatch
	}
	return inference.DefaultTileBatch(device)
}

// RawResult is the direct ONNX Runtime figure: the same model file, device, intra-op
// threads and number of sessions as the pipeline, on the same images prepared the same
// way (resize and normalisation as preprocess does them, tiling as the inference stage
// does it), timed around the model call only.
type RawResult struct {
	Model         string  `json:"model"`
	Device        string  `json:"device"`
	Threads       int     `json:"threads"`
	Sessions      int     `json:"sessions"`
	Tiling        string  `json:"tiling"`
	Runs          int     `json:"runs"`
	WarmupRuns    int     `json:"warmup_runs"`
	WallSeconds   float64 `json:"wall_s"`
	JobsPerSecond float64 `json:"jobs_per_s"`
	Latency       Dist    `json:"latency_ms"`
	// CPU is the CPU use of the timed runs (warm-up and session loading excluded).
	CPU *CPUUse `json:"cpu,omitempty"`
}

// modelTensor prepares an image as the preprocess stage does for spec.
func modelTensor(in Input, spec models.Spec) artifact.Tensor {
	if spec.Input.Resize == "none" {
		return preprocess.ToTensor(in.Pixels, spec.Input)
	}
	return preprocess.ToTensor(spec.Input.Resampling().ResizeNRGBA(in.Pixels, spec.Input.W(), spec.Input.H()), spec.Input)
}

// runModel runs x as the inference stage does: whole, or tiled for manifests with a
// tile size.
func runModel(ctx context.Context, sess inference.Session, spec models.Spec, x artifact.Tensor, batch int) (artifact.Tensor, error) {
	if spec.Tile.Size > 0 {
		return inference.RunTiled(ctx, sess.Run, x, spec.Tile.Size, spec.Tile.Overlap, spec.Scale, batch)
	}
	return sess.Run(ctx, x)
}

func tilingOf(spec models.Spec, batch int) string {
	if spec.Tile.Size == 0 {
		return "none (whole image per run)"
	}
	return fmt.Sprintf("inference.RunTiled: %d px tiles, %d px overlap, x%d, up to %d tiles per call (--tile-batch)", spec.Tile.Size, spec.Tile.Overlap, spec.Scale, batch)
}

// RawBaseline times runs model calls on inputs (cycled) with cfg.Sessions sessions in
// parallel, after warmup untimed runs per session.
func RawBaseline(ctx context.Context, cfg *app.Config, spec models.Spec, inputs []Input, runs, warmup int, log logrus.FieldLogger) (*RawResult, error) {
	if len(inputs) == 0 || runs < 1 {
		return nil, errors.New("bench: raw baseline needs inputs and at least one run")
	}
	backend, err := app.Backend(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	tensors := make([]artifact.Tensor, len(inputs))
	for i, in := range inputs {
		tensors[i] = modelTensor(in, spec)
	}
	n := max(1, cfg.Sessions)
	sessions := make([]inference.Session, 0, n)
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	for range n {
		s, err := backend.Open(spec)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, s)
	}
	batch := tileBatch(cfg, spec, backend.Device())
	res := &RawResult{Model: spec.ID(), Device: backend.Device(), Threads: cfg.Threads, Sessions: n, Tiling: tilingOf(spec, batch), Runs: runs, WarmupRuns: max(1, warmup)}

	// Warm-up: every session runs the inputs in turn, untimed.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for si, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range res.WarmupRuns {
				if _, err := runModel(ctx, s, spec, tensors[(si+w)%len(tensors)], batch); err != nil {
					errs[si] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("raw baseline warm-up: %w", err)
	}

	next := make(chan int)
	lat := make([]float64, runs)
	cpuStart := markCPU()
	start := time.Now()
	for si, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t0 := time.Now()
				if _, err := runModel(ctx, s, spec, tensors[i%len(tensors)], batch); err != nil && errs[si] == nil {
					errs[si] = err
				}
				lat[i] = msSince(t0)
			}
		}()
	}
feed:
	for i := range runs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	wall := time.Since(start)
	res.CPU = cpuUse(cpuStart, markCPU(), runtime.NumCPU(), runs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("raw baseline: %w", err)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("raw baseline: %w", ctx.Err())
	}
	res.WallSeconds = wall.Seconds()
	res.JobsPerSecond = float64(runs) / wall.Seconds()
	res.Latency = distOf(lat)
	return res, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
