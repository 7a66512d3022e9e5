package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

const goodManifest = `
name: styler
version: v1
task: style-transfer
source:
  path: model.onnx
  sha256: %SHA%
input:
  name: input
  shape: [1, 3, -1, -1]
  std: [255, 255, 255]
  resize: none
output:
  name: output
  shape: [1, 3, -1, -1]
  std: [255, 255, 255]
`

func TestShippedManifestsAreValid(t *testing.T) {
	ms, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSet(ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("only %d shipped manifests", len(ms))
	}
}

// TestISNetStatesItsReferencePreprocessing pins the contract the parity test
// (processors/parity_test.go) checks against @imgly/background-removal-node.
func TestISNetStatesItsReferencePreprocessing(t *testing.T) {
	ms, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	imgly := imageio.Resampling{Kernel: imageio.KernelBilinear, Coordinates: imageio.Asymmetric, Antialias: false, Rounding: imageio.Round}
	n := 0
	for _, m := range ms {
		if m.Name != "isnet" {
			continue
		}
		n++
		if got := m.Input.Resampling(); got != imgly {
			t.Errorf("%s input resize %v, want %v", m.ID(), got, imgly)
		}
		if got := m.Output.Resampling(); got != imgly {
			t.Errorf("%s mask resize %v, want %v", m.ID(), got, imgly)
		}
		if m.Output.Quantize != "truncate" || m.Input.ColorManagement != "srgb" || m.Input.Orientation != "stored" {
			t.Errorf("%s: quantize %q, color_management %q, orientation %q; want truncate, srgb, stored", m.ID(), m.Output.Quantize, m.Input.ColorManagement, m.Input.Orientation)
		}
	}
	if n != 2 {
		t.Errorf("found %d isnet manifests, want small and medium", n)
	}
}

// TestManifestDefaultsKeepTheEarlierResize: a manifest that states no resize
// convention gets the antialiased half-pixel bilinear every stage used before.
func TestManifestDefaultsKeepTheEarlierResize(t *testing.T) {
	yaml := strings.ReplaceAll(strings.Replace(goodManifest, "resize: none", "resize: bilinear", 1), "-1, -1]", "256, 256]")
	m, err := ParseManifest("ops/styler.yaml", []byte(strings.ReplaceAll(yaml, "%SHA%", strings.Repeat("ab", 32))))
	if err != nil {
		t.Fatal(err)
	}
	want := imageio.Resampling{Kernel: imageio.KernelBilinear, Coordinates: imageio.HalfPixel, Antialias: true, Rounding: imageio.Round}
	if m.Input.Resampling() != want || m.Output.Resampling() != want {
		t.Errorf("defaults: input %v, output %v; want %v", m.Input.Resampling(), m.Output.Resampling(), want)
	}
	if m.Output.Quantize != "round" || m.Input.ColorManagement != "srgb" || m.Input.Orientation != "upright" {
		t.Errorf("defaults: quantize %q, color_management %q, orientation %q", m.Output.Quantize, m.Input.ColorManagement, m.Input.Orientation)
	}
}

func TestManifestErrorsNameTheFileAndField(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	good := strings.ReplaceAll(goodManifest, "%SHA%", sha)
	tests := []struct {
		name, yaml, want string
	}{
		{"a typo in a field name is refused", strings.Replace(good, "resize:", "resise:", 1), "field resise not found"},
		{"a short sha256 is refused", strings.Replace(good, sha, "abc", 1), "source.sha256"},
		{"an unknown task is refused", strings.Replace(good, "style-transfer", "paint", 1), "task"},
		{"a three-dimensional input shape is refused", strings.Replace(good, "shape: [1, 3, -1, -1]\n  std", "shape: [3, -1, -1]\n  std", 1), "input.shape"},
		{"bilinear resize with dynamic size is refused", strings.Replace(good, "resize: none", "resize: bilinear", 1), "input.resize"},
		{"a zero std is refused", strings.Replace(good, "std: [255, 255, 255]\n  resize", "std: [255, 0, 255]\n  resize", 1), "input.std"},
		{"a missing source is refused", strings.Replace(good, "  path: model.onnx\n", "", 1), "source"},
		{"a bad version is refused", strings.Replace(good, "version: v1", "version: V 1", 1), "version"},
		{"an unknown input kernel is refused", strings.Replace(good, "resize: none", "resize: lanczos", 1), `input.resize: "lanczos" must be bilinear, bicubic, nearest or area`},
		{"an unknown coordinate convention is refused", strings.Replace(good, "resize: none", "resize: none\n  coordinates: corner", 1), `input.coordinates: "corner" must be align_corners, half_pixel or asymmetric`},
		{"an unknown mask kernel is refused", good + "  resize: cubic\n", `output.resize: "cubic"`},
		{"an unknown rounding is refused", good + "  rounding: ceil\n", `output.rounding: "ceil" must be round or truncate`},
		{"an unknown quantisation is refused", good + "  quantize: floor\n", `output.quantize: "floor" must be round or truncate`},
		{"antialiased nearest is refused", good + "  resize: nearest\n  antialias: true\n", "output: antialias applies to bilinear and bicubic"},
		{"area with asymmetric coordinates is refused", good + "  resize: area\n  coordinates: asymmetric\n", "output: area averages"},
		{"an unknown colour handling is refused", strings.Replace(good, "resize: none", "resize: none\n  color_management: p3", 1), `input.color_management: "p3" must be srgb`},
		{"an unknown orientation is refused", strings.Replace(good, "resize: none", "resize: none\n  orientation: sideways", 1), `input.orientation: "sideways" must be upright`},
		{"an input field on the output is refused", good + "  orientation: stored\n", "output.orientation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest("ops/styler.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("manifest accepted")
			}
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), "ops/styler.yaml") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want ErrBadManifest naming the file and %q", err, tc.want)
			}
		})
	}
	if _, err := ParseManifest("ops/styler.yaml", []byte(good)); err != nil {
		t.Fatalf("the good manifest is refused: %v", err)
	}
}

func TestCheckSetRefusesDuplicatesAndDanglingFallbacks(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	good := strings.ReplaceAll(goodManifest, "%SHA%", sha)
	fsys := fstest.MapFS{
		"a.yaml": {Data: []byte(good)},
		"b.yaml": {Data: []byte(good)},
		"c.yaml": {Data: []byte(strings.Replace(good, "version: v1", "version: v2\nfallback: v9", 1))},
	}
	ms, err := LoadManifests(fsys, "ops")
	if err != nil {
		t.Fatal(err)
	}
	err = CheckSet(ms)
	if err == nil || !strings.Contains(err.Error(), "also defined in ops/a.yaml") || !strings.Contains(err.Error(), "styler@v9 is not defined") {
		t.Errorf("CheckSet = %v", err)
	}
}

func TestFetchVerifiesLocalFiles(t *testing.T) {
	dir := t.TempDir()
	data := []byte("not really onnx, but bytes with a digest")
	sum := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(filepath.Join(dir, "styler.yaml"), []byte(strings.ReplaceAll(goodManifest, "%SHA%", hex.EncodeToString(sum[:]))))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, m)
	if err != nil || spec.Path != filepath.Join(dir, "model.onnx") {
		t.Fatalf("Fetch = %v, %v", spec.Path, err)
	}
	t.Run("a wrong sha256 is refused", func(t *testing.T) {
		bad := m
		bad.Source.SHA256 = strings.Repeat("0", 64)
		if _, err := Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, bad); err == nil || !strings.Contains(err.Error(), "has sha256") {
			t.Errorf("Fetch = %v", err)
		}
	})
	t.Run("a missing file is refused", func(t *testing.T) {
		bad := m
		bad.Source.Path = "gone.onnx"
		if _, err := Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, bad); err == nil || !strings.Contains(err.Error(), "gone.onnx") {
			t.Errorf("Fetch = %v", err)
		}
	})
}

func TestResolve(t *testing.T) {
	c := NewCatalog()
	stable := ISNet("small", "/a")
	stable.Weight = 95
	canary := ISNet("medium", "/b")
	canary.Default, canary.Weight = false, 5
	other := ISNet("large", "/c")
	other.Default = false
	for _, s := range []Spec{stable, canary, other} {
		if err := c.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("an explicit version wins", func(t *testing.T) {
		s, err := c.Resolve(schemas.TaskRemoveBackground, "isnet", "large", 0.5)
		if err != nil || s.Version != "large" {
			t.Fatalf("got %s, %v", s.ID(), err)
		}
	})
	t.Run("an unknown version or task is an error", func(t *testing.T) {
		if _, err := c.Resolve(schemas.TaskRemoveBackground, "isnet", "huge", 0); !errors.Is(err, ErrUnknownModel) {
			t.Errorf("err = %v", err)
		}
		if _, err := c.Resolve(schemas.TaskOCR, "", "", 0); !errors.Is(err, ErrUnknownModel) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("canary weights hold within tolerance over a thousand routed jobs", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		n := map[string]int{}
		for range 1000 {
			s, err := c.Resolve(schemas.TaskRemoveBackground, "", "", r.Float64())
			if err != nil {
				t.Fatal(err)
			}
			n[s.Version]++
		}
		if n["large"] != 0 || n["medium"] < 30 || n["medium"] > 75 || n["small"] < 925 {
			t.Errorf("routing %v; want ~95%% small, ~5%% medium, no large", n)
		}
	})
	t.Run("a runtime weight table replaces the manifest weights and its removal restores them", func(t *testing.T) {
		c.SetRouting(schemas.TaskRemoveBackground, &Routing{Model: "isnet", Weights: map[string]int{"large": 50, "small": 50, "missing": 100}})
		got := map[string]bool{}
		for _, u := range []float64{0, 0.2, 0.49, 0.51, 0.8, 0.99} {
			s, err := c.Resolve(schemas.TaskRemoveBackground, "", "", u)
			if err != nil {
				t.Fatal(err)
			}
			got[s.Version] = true
		}
		if !got["large"] || !got["small"] || got["medium"] || len(got) != 2 {
			t.Errorf("routed to %v; want large and small only (a version not in the catalog is skipped)", got)
		}
		if s, _ := c.Resolve(schemas.TaskRemoveBackground, "isnet", "medium", 0); s.Version != "medium" {
			t.Errorf("an explicit version routed to %s", s.Version)
		}
		c.SetRouting(schemas.TaskRemoveBackground, &Routing{Model: "isnet", Weights: map[string]int{"large": 100}})
		if s, _ := c.Resolve(schemas.TaskRemoveBackground, "", "", 0.99); s.Version != "large" {
			t.Errorf("100%% large routed to %s", s.Version)
		}
		c.SetRouting(schemas.TaskRemoveBackground, nil)
		if _, ok := c.RoutingFor(schemas.TaskRemoveBackground); ok {
			t.Error("the table is still set after removal")
		}
		if s, _ := c.Resolve(schemas.TaskRemoveBackground, "", "", 0.99); s.Version != "medium" {
			t.Errorf("after removal u=0.99 routed to %s, want the manifest canary medium", s.Version)
		}
	})
	t.Run("a fallback is found by version", func(t *testing.T) {
		s := stable
		s.Fallback = "large"
		f, ok := c.Fallback(s)
		if !ok || f.Version != "large" {
			t.Errorf("Fallback = %s, %v", f.ID(), ok)
		}
		if _, ok := c.Fallback(other); ok {
			t.Error("a version without fallback has one")
		}
	})
}
