package inference_test

import (
	"context"
	"testing"

	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference"
)

// BenchmarkRunTiledOverhead is what tiling costs around the model: cutting a 512x512
// image into Real-ESRGAN's tiles (256 px, 16 px overlap, 4 per call) and stitching the
// x4 outputs, with a model that returns at once.
func BenchmarkRunTiledOverhead(b *testing.B) {
	const side, tile, overlap, scale, batch = 512, 256, 16, 4, 4
	x := artifact.Tensor{Shape: []int64{1, 3, side, side}, Data: make([]float32, 3*side*side)}
	var out []float32
	run := func(_ context.Context, in artifact.Tensor) (artifact.Tensor, error) {
		n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2]*scale, in.Shape[3]*scale
		if need := int(n * c * h * w); len(out) < need {
			out = make([]float32, need)
		}
		return artifact.Tensor{Shape: []int64{n, c, h, w}, Data: out[:n*c*h*w]}, nil
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inference.RunTiled(ctx, run, x, tile, overlap, scale, batch); err != nil {
			b.Fatal(err)
		}
	}
}
