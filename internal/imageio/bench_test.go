package imageio

import (
	"bytes"
	"image"
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

func BenchmarkEncodePNG(b *testing.B) {
	src := photoImage(1024, 1024)
	b.Run("BestSpeed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = EncodePNG(io.Discard, src)
		}
		var buf bytes.Buffer
		_ = EncodePNG(&buf, src)
		b.ReportMetric(float64(buf.Len()), "bytes/image")
	})
	b.Run("DefaultCompression for comparison", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = png.Encode(io.Discard, src)
		}
		var buf bytes.Buffer
		_ = png.Encode(&buf, src)
		b.ReportMetric(float64(buf.Len()), "bytes/image")
	})
}

// ycbcr420Of decodes a JPEG re-encoding of src without conversion, to get
// the *image.YCbCr that image/jpeg really produces.
func ycbcr420Of(b *testing.B, src image.Image) *image.YCbCr {
	m, err := decoders[FormatJPEG](bytes.NewReader(encodeJPEG(b, src)))
	if err != nil {
		b.Fatal(err)
	}
	return m.(*image.YCbCr)
}
