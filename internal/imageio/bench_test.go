package imageio

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"testing"

	"golang.org/x/image/draw"
)

func BenchmarkDecodeJPEG(b *testing.B) {
	data := encodeJPEG(b, photoImage(1024, 768))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Decode(data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkResizeBilinear(b *testing.B) {
	src := photoImage(1920, 1080) // what Decode returns for a typical upload
	b.Run("BiLinear", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ResizeBilinear(src, 1024, 1024)
		}
	})
	b.Run("ApproxBiLinear for comparison", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dst := image.NewRGBA(image.Rect(0, 0, 1024, 1024))
			draw.ApproxBiLinear.Scale(dst, dst.Rect, src, src.Rect, draw.Src, nil)
		}
	})
}

func BenchmarkToNRGBA(b *testing.B) {
	decoded, _, err := Decode(encodeJPEG(b, photoImage(1024, 768)), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	ycbcr := ycbcr420Of(b, decoded)
	rgba := image.NewRGBA(decoded.Rect)
	draw.Draw(rgba, rgba.Rect, decoded, image.Point{}, draw.Src)
	for _, bb := range []struct {
		name string
		src  image.Image
	}{
		{name: "YCbCr 4:2:0", src: ycbcr},
		{name: "RGBA", src: rgba},
		{name: "NRGBA", src: decoded},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(decoded.Pix)))
			b.ReportAllocs()
			for b.Loop() {
				ToNRGBA(bb.src)
			}
		})
	}
	b.Run("YCbCr 4:2:0 through generic draw for comparison", func(b *testing.B) {
		b.SetBytes(int64(len(decoded.Pix)))
		b.ReportAllocs()
		for b.Loop() {
			dst := image.NewNRGBA(ycbcr.Rect)
			draw.Draw(dst, dst.Rect, ycbcr, image.Point{}, draw.Src)
		}
	})
}

// BenchmarkEncodePNG compares EncodePNG with image/png on photo-like images
// the size of upscaler results. photoImage's noise makes it compress worse
// than a real photo; "astronaut x4" is a real photo scaled up, smooth as an
// upscaler's output is (skipped when the cached photos are absent).
func BenchmarkEncodePNG(b *testing.B) {
	std := png.Encoder{CompressionLevel: png.BestSpeed}
	src := photoImage(1024, 1024)
	b.Run("BestSpeed", func(b *testing.B) { benchEncode(b, src, EncodePNG) })
	b.Run("std BestSpeed for comparison", func(b *testing.B) { benchEncode(b, src, std.Encode) })
	b.Run("DefaultCompression for comparison", func(b *testing.B) { benchEncode(b, src, png.Encode) })
	large := photoImage(2048, 2048)
	b.Run("2048x2048 BestSpeed", func(b *testing.B) { benchEncode(b, large, EncodePNG) })
	b.Run("2048x2048 std BestSpeed for comparison", func(b *testing.B) { benchEncode(b, large, std.Encode) })
	b.Run("astronaut x4", func(b *testing.B) {
		photo := Resize(cachedPhotos(b)["astronaut.png"], 2048, 2048)
		b.Run("BestSpeed", func(b *testing.B) { benchEncode(b, photo, EncodePNG) })
		b.Run("std BestSpeed for comparison", func(b *testing.B) { benchEncode(b, photo, std.Encode) })
	})
}

func benchEncode(b *testing.B, src image.Image, encode func(io.Writer, image.Image) error) {
	b.ReportAllocs()
	for b.Loop() {
		if err := encode(io.Discard, src); err != nil {
			b.Fatal(err)
		}
	}
	var buf bytes.Buffer
	_ = encode(&buf, src)
	b.ReportMetric(float64(buf.Len()), "bytes/image")
}

// BenchmarkThumbnail is the postprocess thumbnail of an upscaler result:
// 2048x2048 down to 256x256, against scaling with the kernel alone, which is
// what Thumbnail did before it box-filtered large sources first.
func BenchmarkThumbnail(b *testing.B) {
	src := photoImage(2048, 2048)
	b.Run("2048x2048 to 256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Thumbnail(src, 256)
		}
	})
	b.Run("2048x2048 to 256 kernel only for comparison", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			scale(draw.CatmullRom, src, 256, 256)
		}
	})
}

// ycbcr420Of decodes a JPEG re-encoding of src with image/jpeg, without
// conversion, to get the *image.YCbCr that a standard decoder produces (ours
// converts to NRGBA itself, with libjpeg-turbo's tables).
func ycbcr420Of(b *testing.B, src image.Image) *image.YCbCr {
	m, err := jpeg.Decode(bytes.NewReader(encodeJPEG(b, src)))
	if err != nil {
		b.Fatal(err)
	}
	return m.(*image.YCbCr)
}
