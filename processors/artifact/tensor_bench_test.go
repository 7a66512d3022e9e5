package artifact_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/processors/artifact"
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
		n := artifact.Elements(bb.shape)
		t := artifact.Tensor{Shape: bb.shape, Data: make([]float32, n)}
		p := artifact.Pixels{Shape: bb.shape, Data: make([]byte, n)}
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
					if ref, err = artifact.PutPixels(ctx, store, key, p); err == nil {
						_, err = artifact.GetPixels(ctx, store, ref)
					}
				} else {
					var ref schemas.ObjectRef
					if ref, err = artifact.PutTensor(ctx, store, key, t); err == nil {
						_, err = artifact.GetTensor(ctx, store, ref)
					}
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
