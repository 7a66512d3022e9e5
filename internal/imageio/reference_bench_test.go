package imageio

import (
	"image"
	"testing"

	"github.com/disintegration/imaging"
	"golang.org/x/image/draw"
)

// BenchmarkResizeReference puts ResizeBilinear and ResizeGray beside a well-known
// image library and beside x/image/draw's BiLinear (what ResizeBilinear used to
// wrap), all with a linear (tent) filter, on preprocess's work (a 1920x1080 or a
// 512x512 photo to IS-Net's 1024x1024) and postprocess's (its 1024x1024 mask down
// to the photo's size). imaging spreads one resize over every core; ours runs on
// one, because the stages already run several images at once: compare with -cpu 1.
func BenchmarkResizeReference(b *testing.B) {
	for _, bb := range []struct {
		name string
		src  image.Image
		w, h int
	}{
		{"1920x1080 to 1024x1024", photoImage(1920, 1080), 1024, 1024},
		{"512x512 to 1024x1024", photoImage(512, 512), 1024, 1024},
		{"mask 1024x1024 to 512x512", maskImage(1024, 1024), 512, 512},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.Run("ours", func(b *testing.B) {
				b.ReportAllocs()
				if g, ok := bb.src.(*image.Gray); ok {
					for b.Loop() {
						ResizeGray(g, bb.w, bb.h)
					}
					return
				}
				for b.Loop() {
					ResizeBilinear(bb.src, bb.w, bb.h)
				}
			})
			b.Run("imaging.Resize Linear", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					imaging.Resize(bb.src, bb.w, bb.h, imaging.Linear)
				}
			})
			b.Run("x-image-draw BiLinear", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					dst := image.NewRGBA(image.Rect(0, 0, bb.w, bb.h))
					draw.BiLinear.Scale(dst, dst.Rect, bb.src, bb.src.Bounds(), draw.Src, nil)
				}
			})
		})
	}
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
