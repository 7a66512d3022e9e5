//go:build cgo

package ort

import (
	"context"
	"testing"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

// TestPipelineRunsPNDM runs SD 1.5's scheduler (PNDMScheduler, skip_prk_steps) through
// the whole pipeline: N steps are N+1 UNet calls, told as progress, deterministic for a
// seed, and another picture than DDIM's from the same noise.
func TestPipelineRunsPNDM(t *testing.T) {
	pndm, tok := openPipeline(t, testExport(t, diffusiontest.Options{Scheduler: "PNDMScheduler"}))
	if pndm.Kind != diffusion.PNDM {
		t.Fatalf("kind %q, want %q from the export's PNDMScheduler", pndm.Kind, diffusion.PNDM)
	}
	ddim, _ := openPipeline(t, testExport(t, diffusiontest.Options{Scheduler: "DDIMScheduler"}))
	ctx := context.Background()
	var seen []int
	a, err := pndm.Generate(ctx, request(tok, 3, 7.5), func(step, steps int) error {
		if steps != 4 {
			t.Errorf("steps = %d, want 4 (3 steps, the first one redone)", steps)
		}
		seen = append(seen, step)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 {
		t.Errorf("progress %v, want 1..4", seen)
	}
	b, err := pndm.Generate(ctx, request(tok, 3, 7.5), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ddim.Generate(ctx, request(tok, 3, 7.5), nil)
	if err != nil {
		t.Fatal(err)
	}
	if digest(a.Pixels) != digest(b.Pixels) {
		t.Error("two PNDM runs with seed 42 differ")
	}
	if digest(a.Pixels) == digest(c.Pixels) {
		t.Error("PNDM and DDIM gave the same pixels")
	}
}
