//go:build cgo

package onnx_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/onnx"
)

// TestModelRunsInONNXRuntime builds a graph the way a text encoder starts (int32 token
// ids gathered from an embedding table, a Constant scale, a symbolic batch dimension)
// and checks ONNX Runtime loads it and computes the expected values.
func TestModelRunsInONNXRuntime(t *testing.T) {
	lib := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ONNXRuntimeCPU.Path))
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatalf("ONNX Runtime library: %v (run `studio fetch runtime`)", err)
		}
		t.Skipf("no ONNX Runtime library at %s (run `studio fetch runtime`): %v", lib, err)
	}
	ortgo.SetSharedLibraryPath(lib)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		t.Fatal(err)
	}
	defer ortgo.DestroyEnvironment()

	var g onnx.Graph
	g.Name = "embed"
	g.Inputs = []onnx.ValueInfo{{Name: "ids", Type: onnx.Int32, Dims: []onnx.Dim{{Param: "batch"}, {Value: 3}}}}
	g.Outputs = []onnx.ValueInfo{{Name: "out", Dims: []onnx.Dim{{Param: "batch"}, {Value: 3}, {Value: 2}}}}
	g.Initializers = []onnx.Tensor{{Name: "table", Dims: []int64{4, 2}, Floats: []float32{0, 1, 2, 3, 4, 5, 6, 7}}}
	g.Add("Constant", nil, []string{"scale"}, onnx.AttrTensor("value", onnx.Tensor{Floats: []float32{10}}))
	g.Add("Gather", []string{"table", "ids"}, []string{"rows"}, onnx.AttrInt("axis", 0))
	g.Add("Mul", []string{"rows", "scale"}, []string{"out"})
	m := onnx.Model{Producer: "onnx_test", Graph: g}
	path := filepath.Join(t.TempDir(), "embed.onnx")
	if err := os.WriteFile(path, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}

	s, err := ortgo.NewDynamicAdvancedSession(path, []string{"ids"}, []string{"out"}, nil)
	if err != nil {
		t.Fatalf("ONNX Runtime rejected the graph: %v", err)
	}
	defer s.Destroy()
	ids, err := ortgo.NewTensor(ortgo.NewShape(2, 3), []int32{3, 0, 1, 2, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ids.Destroy()
	out := []ortgo.Value{nil}
	if err := s.Run([]ortgo.Value{ids}, out); err != nil {
		t.Fatal(err)
	}
	defer out[0].Destroy()
	got := out[0].(*ortgo.Tensor[float32])
	if shape := got.GetShape(); !slices.Equal([]int64(shape), []int64{2, 3, 2}) {
		t.Fatalf("output shape %v, want [2 3 2]", shape)
	}
	want := []float32{60, 70, 0, 10, 20, 30, 40, 50, 40, 50, 60, 70}
	if !slices.Equal(got.GetData(), want) {
		t.Fatalf("output %v, want %v", got.GetData(), want)
	}
}
