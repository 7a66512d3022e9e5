package imageio_test

import (
	"fmt"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

// BenchmarkResizeTo1024 brings a photo to a model's 1024x1024 input: the
// antialiased fixed-point resize every model used before (ResizeBilinear),
// the exact two-tap bilinear of IS-Net's manifest, and the exact float
// antialiased bilinear a manifest gets by default.
func BenchmarkResizeTo1024(b *testing.B) {
	for _, side := range []int{512, 2048} {
		src := imagetest.Photo(side, side)
		for _, m := range []struct {
			name   string
			resize func() any
		}{
			{"antialiased fixed point", func() any { return imageio.ResizeBilinear(src, 1024, 1024) }},
			{"two-tap asymmetric", func() any {
				return imageio.Resampling{Kernel: imageio.KernelBilinear, Coordinates: imageio.Asymmetric, Rounding: imageio.Round}.ResizeNRGBA(src, 1024, 1024)
			}},
			{"antialiased float", func() any {
				return imageio.Resampling{Kernel: imageio.KernelBilinear, Coordinates: imageio.HalfPixel, Antialias: true, Rounding: imageio.Round}.ResizeNRGBA(src, 1024, 1024)
			}},
		} {
			b.Run(fmt.Sprintf("from %d/%s", side, m.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					m.resize()
				}
			})
		}
	}
}
