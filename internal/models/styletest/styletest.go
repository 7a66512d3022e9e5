// Package styletest writes a tiny arbitrary-style model for tests: an ONNX graph with
// the signature of a PyTorch AdaIN export and its model manifest.
package styletest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/creativeai-studio/studio/internal/onnx"
)

// The model WriteAdaIN writes, as a job names it.
const (
	Name    = "adain"
	Version = "test"
	ID      = Name + "@" + Version
)

// Graph returns an arbitrary-style graph with the signature of a PyTorch AdaIN export
// (torch.onnx.export of pytorch-AdaIN's style_transfer, input names "content" and
// "style", dynamic spatial axes): content float32 [1, 3, H, W] and style float32
// [1, 3, H', W'], values 0..1, to "output" float32 [1, 3, H, W]. Its body is adaptive
// instance normalisation of the pixels themselves, without the VGG encoder and
// decoder: each channel of the content is shifted and scaled to the style's channel
// mean and standard deviation. It is a synthetic graph, not a style model; it makes
// the result depend on both images in a way a test can check.
func Graph() []byte {
	var g onnx.Graph
	g.Name = "adain"
	image := func(name string) onnx.ValueInfo {
		return onnx.ValueInfo{Name: name, Dims: []onnx.Dim{{Value: 1}, {Value: 3}, {Param: name + "_height"}, {Param: name + "_width"}}}
	}
	g.Inputs = []onnx.ValueInfo{image("content"), image("style")}
	g.Outputs = []onnx.ValueInfo{{Name: "output", Dims: []onnx.Dim{{Value: 1}, {Value: 3}, {Param: "content_height"}, {Param: "content_width"}}}}
	g.Initializers = []onnx.Tensor{{Name: "eps", Dims: []int64{}, Floats: []float32{1e-5}}}
	for _, x := range []string{"content", "style"} {
		g.Add("ReduceMean", []string{x}, []string{x + "_mean"}, onnx.AttrInts("axes", 2, 3), onnx.AttrInt("keepdims", 1))
		g.Add("Sub", []string{x, x + "_mean"}, []string{x + "_centred"})
		g.Add("Mul", []string{x + "_centred", x + "_centred"}, []string{x + "_sq"})
		g.Add("ReduceMean", []string{x + "_sq"}, []string{x + "_var"}, onnx.AttrInts("axes", 2, 3), onnx.AttrInt("keepdims", 1))
		g.Add("Add", []string{x + "_var", "eps"}, []string{x + "_var_eps"})
		g.Add("Sqrt", []string{x + "_var_eps"}, []string{x + "_std"})
	}
	g.Add("Div", []string{"content_centred", "content_std"}, []string{"normalised"})
	g.Add("Mul", []string{"normalised", "style_std"}, []string{"scaled"})
	g.Add("Add", []string{"scaled", "style_mean"}, []string{"output"})
	m := onnx.Model{Producer: "styletest", Graph: g}
	return m.Marshal()
}

// WriteAdaIN writes adain.onnx (Graph) and its manifest adain-test.yaml into dir, a
// --model-dir: content at any size, the style image resized to 64x64 (bilinear).
func WriteAdaIN(dir string) error {
	data := Graph()
	if err := os.WriteFile(filepath.Join(dir, "adain.onnx"), data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	manifest := fmt.Sprintf(`# A synthetic arbitrary-style test graph (internal/models/styletest), not a style model.
name: %s
version: %s
task: style-transfer
license: test-only
source:
  path: adain.onnx
  sha256: %s
  size: %d
input:
  name: content
  shape: [1, 3, -1, -1]
  std: [255, 255, 255]
  resize: none
style:
  name: style
  shape: [1, 3, 64, 64]
  std: [255, 255, 255]
  resize: bilinear
output:
  name: output
  shape: [1, 3, -1, -1]
  std: [255, 255, 255]
`, Name, Version, hex.EncodeToString(sum[:]), len(data))
	return os.WriteFile(filepath.Join(dir, "adain-test.yaml"), []byte(manifest), 0o644)
}
