//go:build cgo

package ort

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/onnx"
	"github.com/creativeai-studio/studio/processors/artifact"
)

// writeGraph writes a float32-in, float32-out graph: Identity, or (fp16) a round trip
// through half precision, as an fp16 export with float32 inputs computes.
func writeGraph(t *testing.T, path string, fp16 bool) {
	t.Helper()
	m := onnx.Model{Producer: "studio-test", Graph: onnx.Graph{
		Name:    "variant",
		Inputs:  []onnx.ValueInfo{{Name: "input", Dims: onnx.Dims(1, 1, 1, 2)}},
		Outputs: []onnx.ValueInfo{{Name: "output", Dims: onnx.Dims(1, 1, 1, 2)}},
	}}
	if fp16 {
		m.Graph.Add("Cast", []string{"input"}, []string{"half"}, onnx.AttrInt("to", int64(onnx.Float16)))
		m.Graph.Add("Cast", []string{"half"}, []string{"output"}, onnx.AttrInt("to", int64(onnx.Float)))
	} else {
		m.Graph.Add("Identity", []string{"input"}, []string{"output"})
	}
	if err := os.WriteFile(path, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVariantFile loads a manifest's fp16 variant where the device selects it and the
// CPU file where it does not. ONNX Runtime runs both graphs on the CPU here; which file
// a session loaded shows in its output: 1/3 comes back exact from the float32 file and
// rounded to half precision (0.333251953125) from the fp16 one.
func TestVariantFile(t *testing.T) {
	lib := cpuLibrary(t)
	b, err := New(Config{LibraryPath: lib, Device: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fp32, fp16 := filepath.Join(dir, "model.onnx"), filepath.Join(dir, "cuda-fp16.onnx")
	writeGraph(t, fp32, false)
	writeGraph(t, fp16, true)
	spec := models.Spec{
		Manifest: models.Manifest{Name: "variant", Version: "v1",
			Input: models.Tensor{Name: "input"}, Output: models.Tensor{Name: "output"}},
		Path:         fp32,
		VariantPaths: map[string]string{"cuda": fp16},
	}
	run := func(t *testing.T, b *Backend, s models.Spec) float32 {
		t.Helper()
		sess, err := b.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		y, err := sess.Run(context.Background(), artifact.Tensor{Shape: []int64{1, 1, 1, 2}, Data: []float32{1.0 / 3, 2}})
		if err != nil {
			t.Fatal(err)
		}
		if len(y.Data) != 2 || y.Data[1] != 2 {
			t.Fatalf("output %v", y.Data)
		}
		return y.Data[0]
	}
	t.Run("on the CPU the float32 file runs", func(t *testing.T) {
		if got := run(t, b, spec); got != 1.0/3 {
			t.Errorf("output %v, want 1/3 exactly (the variant was loaded?)", got)
		}
	})
	t.Run("on CUDA the fp16 file is the one loaded", func(t *testing.T) {
		gpu := *b
		gpu.device = "cuda:0" // the path choice only; the session itself still runs on the CPU
		if got := spec.PathFor(gpu.Device()); got != fp16 {
			t.Fatalf("PathFor(%s) = %s", gpu.Device(), got)
		}
		cpuOnly := spec
		cpuOnly.Path, cpuOnly.VariantPaths = fp16, nil // load the fp16 graph on the CPU backend
		if got := run(t, b, cpuOnly); got != 0.333251953125 {
			t.Errorf("fp16 graph output %v, want 1/3 in half precision (0.333251953125)", got)
		}
	})
}
