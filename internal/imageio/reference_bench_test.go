package imageio

import (
	"image"
	"testing"

	"github.com/disintegration/imaging"
)

// BenchmarkResizeReference puts ResizeBilinear beside a well-known image library on
// the same work as BenchmarkResizeBilinear: a 1920x1080 photo-like image to 1024x1024
// with a linear (tent) filter. imaging spreads one resize over every core; ours runs
// on one, because the stages already run several images at once.
func BenchmarkResizeReference(b *testing.B) {
	src := photoImage(1920, 1080)
	b.Run("ResizeBilinear", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ResizeBilinear(src, 1024, 1024)
		}
	})
	b.Run("imaging.Resize Linear", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			imaging.Resize(src, 1024, 1024, imaging.Linear)
		}
	})
}

// BenchmarkDecodePNG decodes a 1024x1024 photo-like PNG (the cached test photos are
// PNGs, as are the pipeline's own intermediate images).
func BenchmarkDecodePNG(b *testing.B) {
	data := encodePNG(b, photoImage(1024, 1024))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeResize is the decode+resize of preprocess for IS-Net: a 1920x1080 JPEG
// decoded upright and brought to 1024x1024.
func BenchmarkDecodeResize(b *testing.B) {
	data := encodeJPEG(b, photoImage(1920, 1080))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var out *image.NRGBA
	for b.Loop() {
		img, _, err := Decode(data, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		out = ResizeBilinear(img, 1024, 1024)
	}
	_ = out
}
