package preprocess_test

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/preprocess"
)

// realESRGANInput is the input contract of the shipped upscaler: RGB 0..1, any size.
var realESRGANInput = models.Tensor{Name: "input", Shape: []int64{-1, 3, -1, -1}, Color: "RGB", Std: [3]float32{255, 255, 255}, Resize: "none"}

func BenchmarkToTensor(b *testing.B) {
	for _, bb := range []struct {
		name string
		img  *image.NRGBA
		spec models.Tensor
	}{
		{"IS-Net 1024x1024 (v-128)/256", imagetest.Photo(1024, 1024), models.ISNet("small", "").Input},
		{"Real-ESRGAN 512x512 v/255", imagetest.Photo(512, 512), realESRGANInput},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.img.Pix)))
			b.ReportAllocs()
			for b.Loop() {
				preprocess.ToTensor(bb.img, bb.spec)
			}
		})
	}
}

// BenchmarkPreprocessImage is the preprocess stage's CPU work on one upload, storage
// aside: decode a 1920x1080 JPEG, resize it to IS-Net's 1024x1024, normalise.
func BenchmarkPreprocessImage(b *testing.B) {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, imagetest.Photo(1920, 1080), &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	spec := models.ISNet("small", "").Input
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		img, _, err := imageio.Decode(data, imageio.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		preprocess.ToTensor(spec.Resampling().ResizeNRGBA(img, spec.W(), spec.H()), spec)
	}
}
