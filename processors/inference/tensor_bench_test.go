package inference_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// BenchmarkTensorRoundTrip stores a tensor in the JetStream object store (embedded
// server, file storage) and reads it back, as preprocess -> inference and inference ->
// postprocess do for every job.
func BenchmarkTensorRoundTrip(b *testing.B) {
	s := streamstest.Start(b)
	ctx := context.Background()
	store, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name  string
		shape []int64
		u8    bool
	}{
		{"IS-Net input float32 1x3x1024x1024 (12 MiB)", []int64{1, 3, 1024, 1024}, false},
		{"IS-Net input uint8 1x3x1024x1024 (3 MiB)", []int64{1, 3, 1024, 1024}, true},
		{"IS-Net mask float32 1x1x1024x1024 (4 MiB)", []int64{1, 1, 1024, 1024}, false},
		{"IS-Net mask uint8 1x1x1024x1024 (1 MiB)", []int64{1, 1, 1024, 1024}, true},
		{"x4 output uint8 1x3x2048x2048 (12 MiB)", []int64{1, 3, 2048, 2048}, true},
		{"8x8 image float32 1x3x8x8", []int64{1, 3, 8, 8}, false},
	} {
		n := inference.Elements(bb.shape)
		t := inference.Tensor{Shape: bb.shape, Data: make([]float32, n)}
		p := inference.Pixels{Shape: bb.shape, Data: make([]byte, n)}
		for i := range t.Data {
			t.Data[i] = float32(i%255) / 255
			p.Data[i] = byte(i % 255)
		}
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(4 * n)
			if bb.u8 {
				b.SetBytes(n)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				key := fmt.Sprintf("work/bench-%d/input", i%8)
				var err error
				if bb.u8 {
					var ref schemas.ObjectRef
					if ref, err = inference.PutPixels(ctx, store, key, p); err == nil {
						_, err = inference.GetPixels(ctx, store, ref)
					}
				} else {
					var ref schemas.ObjectRef
					if ref, err = inference.PutTensor(ctx, store, key, t); err == nil {
						_, err = inference.GetTensor(ctx, store, ref)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRunTiledOverhead is what tiling costs around the model: cutting a 512x512
// image into Real-ESRGAN's tiles (256 px, 16 px overlap, 4 per call) and stitching the
// x4 outputs, with a model that returns at once.
func BenchmarkRunTiledOverhead(b *testing.B) {
	const side, tile, overlap, scale, batch = 512, 256, 16, 4, 4
	x := inference.Tensor{Shape: []int64{1, 3, side, side}, Data: make([]float32, 3*side*side)}
	var out []float32
	run := func(_ context.Context, in inference.Tensor) (inference.Tensor, error) {
		n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2]*scale, in.Shape[3]*scale
		if need := int(n * c * h * w); len(out) < need {
			out = make([]float32, need)
		}
		return inference.Tensor{Shape: []int64{n, c, h, w}, Data: out[:n*c*h*w]}, nil
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := inference.RunTiled(ctx, run, x, tile, overlap, scale, batch); err != nil {
			b.Fatal(err)
		}
	}
}
