//go:build cgo

package ort

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/diffusion-golden.txt from this run")

func testExport(t testing.TB, o diffusiontest.Options) string {
	t.Helper()
	dir := t.TempDir()
	if err := diffusiontest.WriteExport(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func openPipeline(t testing.TB, dir string) (*diffusion.Pipeline, *diffusion.Tokenizer) {
	t.Helper()
	b, err := New(Config{LibraryPath: cpuLibrary(t), Device: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := diffusion.Open(dir, b, diffusion.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	tok, err := diffusion.LoadTokenizer(dir)
	if err != nil {
		t.Fatal(err)
	}
	return p, tok
}

func request(tok *diffusion.Tokenizer, steps int, guidance float64) diffusion.Request {
	return diffusion.Request{
		Cond: tok.Encode("a photo of a red cat"), Uncond: tok.Encode("blurry"),
		Seed: 42, Steps: steps, Guidance: guidance, Width: 64, Height: 64, Images: 1,
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestPipelineGolden runs the test export for a fixed seed with each scheduler and
// compares the sha256 of the pixels with testdata/diffusion-golden.txt (regenerate with
// -update-golden after a deliberate change to the pipeline).
func TestPipelineGolden(t *testing.T) {
	cases := []struct {
		name     string
		opts     diffusiontest.Options
		steps    int
		guidance float64
	}{
		{"euler ancestral with guidance", diffusiontest.Options{}, 4, 7.5},
		{"ddim with guidance and an int64 timestep", diffusiontest.Options{Scheduler: "DDIMScheduler", TimestepInt64: true}, 4, 7.5},
		{"one-step turbo: euler trailing without guidance", diffusiontest.Options{Scheduler: "EulerDiscreteScheduler", Spacing: "trailing"}, 1, 0},
	}
	golden := filepath.Join("testdata", "diffusion-golden.txt")
	want := map[string]string{}
	if data, err := os.ReadFile(golden); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if name, sum, ok := strings.Cut(line, "\t"); ok {
				want[name] = sum
			}
		}
	}
	var lines []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, tok := openPipeline(t, testExport(t, c.opts))
			res, err := p.Generate(context.Background(), request(tok, c.steps, c.guidance), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.N != 1 || res.Width != 64 || res.Height != 64 || len(res.Pixels) != 3*64*64 {
				t.Fatalf("result %dx%dx%d with %d bytes, want one 64x64 image", res.N, res.Width, res.Height, len(res.Pixels))
			}
			got := digest(res.Pixels)
			lines = append(lines, c.name+"\t"+got)
			if !*updateGolden && want[c.name] != got {
				t.Errorf("pixels sha256 %s, golden %s (rerun with -update-golden if the change is intended)", got, want[c.name])
			}
		})
	}
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPipeline(t *testing.T) {
	dir := testExport(t, diffusiontest.Options{})
	p, tok := openPipeline(t, dir)
	ctx := context.Background()

	t.Run("the same seed and settings give the same pixels twice", func(t *testing.T) {
		a, err := p.Generate(ctx, request(tok, 3, 7.5), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Generate(ctx, request(tok, 3, 7.5), nil)
		if err != nil {
			t.Fatal(err)
		}
		if digest(a.Pixels) != digest(b.Pixels) {
			t.Error("two runs with seed 42 differ")
		}
		r := request(tok, 3, 7.5)
		r.Seed = 43
		c, err := p.Generate(ctx, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if digest(a.Pixels) == digest(c.Pixels) {
			t.Error("seeds 42 and 43 gave the same pixels")
		}
	})
	t.Run("guidance changes the result, and the negative prompt matters under guidance", func(t *testing.T) {
		a, _ := p.Generate(ctx, request(tok, 2, 7.5), nil)
		b, _ := p.Generate(ctx, request(tok, 2, 0), nil)
		r := request(tok, 2, 7.5)
		r.Uncond = tok.Encode("dog")
		c, _ := p.Generate(ctx, r, nil)
		if digest(a.Pixels) == digest(b.Pixels) || digest(a.Pixels) == digest(c.Pixels) {
			t.Error("guidance or negative prompt had no effect")
		}
	})
	t.Run("progress is told once per step, in order", func(t *testing.T) {
		var seen []int
		_, err := p.Generate(ctx, request(tok, 5, 7.5), func(step, steps int) error {
			if steps != 5 {
				t.Errorf("steps = %d, want 5", steps)
			}
			seen = append(seen, step)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 5 || seen[0] != 1 || seen[4] != 5 {
			t.Errorf("progress calls %v, want 1..5", seen)
		}
	})
	t.Run("cancelling between steps stops the run after the step in flight", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		_, err := p.Generate(cctx, request(tok, 10, 7.5), func(step, _ int) error {
			calls++
			if step == 2 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if calls != 2 {
			t.Errorf("%d steps ran after cancelling at step 2", calls-2)
		}
	})
	t.Run("several images come from one batch, each different", func(t *testing.T) {
		r := request(tok, 2, 7.5)
		r.Images, r.Width, r.Height = 3, 32, 48
		res, err := p.Generate(ctx, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		plane := 3 * 32 * 48
		if res.N != 3 || len(res.Pixels) != 3*plane {
			t.Fatalf("got %d images, %d bytes", res.N, len(res.Pixels))
		}
		if digest(res.Pixels[:plane]) == digest(res.Pixels[plane:2*plane]) {
			t.Error("images 1 and 2 are identical")
		}
		if img := res.Image(2); img.Bounds().Dx() != 32 || img.Bounds().Dy() != 48 {
			t.Errorf("image bounds %v", img.Bounds())
		}
	})
	t.Run("a size that is not a multiple of 8 is refused", func(t *testing.T) {
		r := request(tok, 1, 0)
		r.Width = 60
		if _, err := p.Generate(ctx, r, nil); err == nil || !strings.Contains(err.Error(), "multiples of 8") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestOpenRefusesIncompleteExports(t *testing.T) {
	dir := testExport(t, diffusiontest.Options{Omit: []string{diffusion.UNetFile, diffusion.MergesFile}})
	b, err := New(Config{LibraryPath: cpuLibrary(t), Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = diffusion.Open(dir, b, diffusion.Options{})
	if !errors.Is(err, diffusion.ErrBadExport) || !strings.Contains(err.Error(), "unet/model.onnx") || !strings.Contains(err.Error(), "tokenizer/merges.txt") {
		t.Errorf("err = %v, want one naming both missing files", err)
	}
}

// BenchmarkDenoisingStep runs 20-step generations of the test export (8x8 latents, a
// 64x64 image, guidance on, so every UNet call takes a batch of 2) and reports the
// median time between two progress reports: one denoising step (the UNet call, the
// guidance mix and the scheduler update). ns/op is the whole 20-step image.
func BenchmarkDenoisingStep(b *testing.B) {
	p, tok := openPipeline(b, testExport(b, diffusiontest.Options{}))
	r := request(tok, 20, 7.5)
	var steps []time.Duration
	for b.Loop() {
		last := time.Now()
		if _, err := p.Generate(context.Background(), r, func(int, int) error {
			now := time.Now()
			steps = append(steps, now.Sub(last))
			last = now
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	// The first interval also holds the text encoder: leave it out of the median.
	var perStep []time.Duration
	for i, d := range steps {
		if i%20 != 0 {
			perStep = append(perStep, d)
		}
	}
	slices.Sort(perStep)
	if len(perStep) > 0 {
		b.ReportMetric(perStep[len(perStep)/2].Seconds(), "s/step")
	}
}
