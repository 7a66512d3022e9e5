package jpeg_test

import (
	"bytes"
	stdjpeg "image/jpeg"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/internal/imageio/jpeg"
)

// BenchmarkDecode decodes a 1920x1080 4:2:0 JPEG to NRGBA: this package
// (libjpeg-turbo's arithmetic) against image/jpeg plus imageio.ToNRGBA.
func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	if err := stdjpeg.Encode(&buf, imagetest.Photo(1920, 1080), &stdjpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.Run("libjpeg arithmetic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := jpeg.Decode(bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("image/jpeg + ToNRGBA", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			img, err := stdjpeg.Decode(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			imageio.ToNRGBA(img)
		}
	})
}
