package models

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

func TestDiffusionManifests(t *testing.T) {
	cases := []struct {
		name, yaml string
		problem    string // "" when valid
	}{
		{"an export directory is all a generate manifest needs", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: sd-turbo-onnx\n", ""},
		{"SD-Turbo defaults: one step, no guidance", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  steps: 1\n  guidance: 0\n", ""},
		{"generate without an export is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  path: model.onnx\n  sha256: " + strings.Repeat("a", 64) + "\n", "source.export"},
		{"an export for another task is refused", "name: sd\nversion: v1\ntask: upscale\nsource:\n  export: x\n", "serves task generate"},
		{"an unknown scheduler is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  scheduler: lms\n", "diffusion.scheduler"},
		{"a default size off the 8-pixel grid is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  width: 500\n", "diffusion.width"},
		{"too many steps are refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  steps: 151\n", "diffusion.steps"},
		{"UNet sharing can be turned off and its window set", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  unet_batch: 1\n  batch_window_ms: 20\n", ""},
		{"a UNet batch beyond 64 is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  unet_batch: 65\n", "diffusion.unet_batch"},
		{"a gather window beyond a second is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  batch_window_ms: 1001\n", "diffusion.batch_window_ms"},
		{"the safety checker can be required", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  safety: required\n", ""},
		{"the safety checker can be turned off", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  safety: off\n", ""},
		{"an unknown safety mode is refused", "name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  safety: strict\n", "diffusion.safety"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseManifest("sd.yaml", []byte(c.yaml))
			switch {
			case c.problem == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.problem != "" && (err == nil || !strings.Contains(err.Error(), c.problem)):
				t.Errorf("err = %v, want one naming %q", err, c.problem)
			}
		})
	}
}

func TestFetchChecksTheExportDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := diffusiontest.WriteExport(filepath.Join(dir, "good"), diffusiontest.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := diffusiontest.WriteExport(filepath.Join(dir, "partial"), diffusiontest.Options{Omit: []string{diffusion.VAEDecoderFile, diffusion.VocabFile}}); err != nil {
		t.Fatal(err)
	}
	cache := &assets.Cache{Dir: t.TempDir()}
	t.Run("a complete export resolves to its directory", func(t *testing.T) {
		m, err := ParseManifest(filepath.Join(dir, "sd.yaml"), []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: good\n"))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := Fetch(context.Background(), cache, m)
		if err != nil || spec.Path != filepath.Join(dir, "good") {
			t.Fatalf("spec %q, %v", spec.Path, err)
		}
	})
	t.Run("safety required without the safety checker is refused, with what to do", func(t *testing.T) {
		m, err := ParseManifest(filepath.Join(dir, "sd.yaml"), []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: good\ndiffusion:\n  safety: required\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Fetch(context.Background(), cache, m)
		if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), diffusion.SafetyCheckerFile) || !strings.Contains(err.Error(), "diffusion.safety") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("safety required with the safety checker resolves", func(t *testing.T) {
		if err := diffusiontest.WriteExport(filepath.Join(dir, "safe"), diffusiontest.Options{Safety: true}); err != nil {
			t.Fatal(err)
		}
		m, err := ParseManifest(filepath.Join(dir, "sd.yaml"), []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: safe\ndiffusion:\n  safety: required\n"))
		if err != nil {
			t.Fatal(err)
		}
		if spec, err := Fetch(context.Background(), cache, m); err != nil || spec.Diffusion.Safety != diffusion.SafetyRequired {
			t.Fatalf("spec %+v, %v", spec.Diffusion, err)
		}
	})
	t.Run("a missing file is named, with what to do", func(t *testing.T) {
		m, err := ParseManifest(filepath.Join(dir, "sd.yaml"), []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: partial\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Fetch(context.Background(), cache, m)
		if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), diffusion.VAEDecoderFile) || !strings.Contains(err.Error(), diffusion.VocabFile) || !strings.Contains(err.Error(), "optimum-cli export onnx") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestGeneration(t *testing.T) {
	m, err := ParseManifest("sd.yaml", []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\ndiffusion:\n  steps: 1\n  guidance: 0\n  max_side: 768\n  max_images: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("left-out settings take the manifest's defaults", func(t *testing.T) {
		g, err := m.Generation(map[string]any{"prompt": "a cat", "seed": float64(7)})
		if err != nil {
			t.Fatal(err)
		}
		want := Generation{Prompt: "a cat", Seed: 7, Steps: 1, Guidance: 0, Width: 512, Height: 512, Images: 1}
		if g != want {
			t.Errorf("got %+v, want %+v", g, want)
		}
	})
	bad := []struct {
		name   string
		params map[string]any
		want   string
	}{
		{"a side over the manifest's max_side is refused", map[string]any{"width": float64(1024)}, "width"},
		{"more images than max_images are refused", map[string]any{"num_images": float64(3)}, "num_images"},
		{"a height off the 8-pixel grid is refused", map[string]any{"height": float64(100)}, "multiple of 8"},
		{"a fractional seed is refused", map[string]any{"seed": 1.5}, "seed"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := m.Generation(c.params); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one naming %q", err, c.want)
			}
		})
	}
}

func TestDiffusionBatchOptions(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       diffusion.BatchOptions
	}{
		{"left out: the device decides, with a 5 ms window", "", diffusion.BatchOptions{Window: 5 * time.Millisecond}},
		{"set: as written", "diffusion:\n  unet_batch: 4\n  batch_window_ms: 20\n", diffusion.BatchOptions{MaxBatch: 4, Window: 20 * time.Millisecond}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseManifest("sd.yaml", []byte("name: sd\nversion: v1\ntask: generate\nsource:\n  export: x\n"+c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Diffusion.Batch(); got != c.want {
				t.Errorf("Batch() = %+v, want %+v", got, c.want)
			}
		})
	}
}
