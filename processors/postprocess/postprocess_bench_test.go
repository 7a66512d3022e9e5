package postprocess_test

import (
	"bytes"
	"image"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/schemas"
)

// maskTensor is an IS-Net-like output: a soft disc of foreground in 0..1.
func maskTensor(side int) artifact.Tensor {
	t := artifact.Tensor{Shape: []int64{1, 1, int64(side), int64(side)}, Data: make([]float32, side*side)}
	c := float32(side) / 2
	for y := range side {
		for x := range side {
			dx, dy := float32(x)-c, float32(y)-c
			v := 1.5 - (dx*dx+dy*dy)/(c*c)
			t.Data[y*side+x] = min(max(v, -0.1), 1.1)
		}
	}
	return t
}

// isnet is the shipped remove-background contract the benchmarks run.
var isnet = models.ISNet("small", "")

func BenchmarkMaskFromTensor(b *testing.B) {
	t := maskTensor(1024)
	b.SetBytes(int64(4 * len(t.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := postprocess.MaskFromTensor(t, isnet.Output); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScaleMask(b *testing.B) {
	mask, err := postprocess.MaskFromTensor(maskTensor(1024), isnet.Output)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []struct {
		name string
		w, h int
	}{{"1024 to 512x512", 512, 512}, {"1024 to 1920x1080", 1920, 1080}} {
		// The manifest's two-tap bilinear against the antialiased fixed-point
		// resize every mask went through before.
		b.Run(size.name+"/imgly two-tap", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				postprocess.ScaleMask(mask, size.w, size.h, isnet.Output.Resampling())
			}
		})
		b.Run(size.name+"/antialiased fixed point", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				imageio.ResizeGray(mask, size.w, size.h)
			}
		})
	}
}

func BenchmarkCutout(b *testing.B) {
	img := imagetest.Photo(1920, 1080)
	m, err := postprocess.MaskFromTensor(maskTensor(1024), isnet.Output)
	if err != nil {
		b.Fatal(err)
	}
	mask := postprocess.ScaleMask(m, 1920, 1080, isnet.Output.Resampling())
	b.SetBytes(int64(len(img.Pix)))
	b.ReportAllocs()
	for b.Loop() {
		postprocess.Cutout(img, mask)
	}
}

// BenchmarkFromTensor converts a x4 upscale of a 512x512 image back into pixels.
func BenchmarkFromTensor(b *testing.B) {
	const side = 2048
	t := artifact.Tensor{Shape: []int64{1, 3, side, side}, Data: make([]float32, 3*side*side)}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range t.Data {
		t.Data[i] = rng.Float32()*1.1 - 0.05
	}
	spec := models.Tensor{Color: "RGB", Std: [3]float32{255, 255, 255}}
	b.SetBytes(int64(4 * len(t.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := postprocess.FromTensor(t, spec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeResults encodes what remove-background writes for a 512x512 photo:
// the RGBA cut-out, the mask and the thumbnail.
func BenchmarkEncodeResults(b *testing.B) {
	img := imagetest.Photo(512, 512)
	m, err := postprocess.MaskFromTensor(maskTensor(1024), isnet.Output)
	if err != nil {
		b.Fatal(err)
	}
	mask := postprocess.ScaleMask(m, 512, 512, isnet.Output.Resampling())
	cut := postprocess.Cutout(img, mask)
	thumb := imageio.Thumbnail(cut, postprocess.ThumbnailSide)
	for _, bb := range []struct {
		name string
		img  image.Image
	}{{"cutout RGBA 512x512", cut}, {"mask gray 512x512", mask}, {"thumbnail 256x256", thumb}} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := imageio.EncodePNG(io.Discard, bb.img); err != nil {
					b.Fatal(err)
				}
			}
			var buf bytes.Buffer
			_ = imageio.EncodePNG(&buf, bb.img)
			b.ReportMetric(float64(buf.Len()), "bytes/image")
		})
	}
}

// BenchmarkEncodeFormats encodes remove-background's cut-out of a 512x512 photo and an
// x4 upscale (2048x2048, opaque) in each output format (Encode, sRGB), reporting the
// file size: the encode part of postprocess's cost per format.
func BenchmarkEncodeFormats(b *testing.B) {
	img := imagetest.Photo(512, 512)
	m, err := postprocess.MaskFromTensor(maskTensor(1024), isnet.Output)
	if err != nil {
		b.Fatal(err)
	}
	cut := postprocess.Cutout(img, postprocess.ScaleMask(m, 512, 512, isnet.Output.Resampling()))
	big := imageio.Resize(imagetest.Photo(512, 512), 2048, 2048) // as smooth as an upscaler's output
	for _, in := range []struct {
		name string
		img  *image.NRGBA
	}{{"cutout 512x512", cut}, {"x4 2048x2048", big}} {
		for _, params := range []map[string]any{nil, {"format": "jpeg"}, {"format": "webp"}} {
			out, err := schemas.OutputFormatOf(params)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(in.name+"/"+out.Format, func(b *testing.B) {
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := postprocess.Encode(&buf, in.img, out, nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len()), "bytes/image")
			})
		}
	}
}
