package app

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
)

func TestEndToEndUpscale(t *testing.T) {
	lib, _, photo := realAssets(t)
	api, _ := startUp(t, func(c *Config) { c.MaxOutPixels = 3 << 20 })
	input, err := os.ReadFile(photo(assets.PhotoChelsea)) // 451x300
	if err != nil {
		t.Fatal(err)
	}
	run := func(params string) ingest.JobResponse {
		t.Helper()
		resp, body := submit(t, api, "chelsea.png", input, map[string]string{"task": "upscale", "params": params})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var j ingest.JobResponse
		_ = json.Unmarshal(body, &j)
		return waitFinal(t, api, j.ID, 5*time.Minute)
	}
	start := time.Now()
	x4 := run(`{"scale":4}`)
	latency := time.Since(start)
	if x4.Status != schemas.StatusSucceeded {
		t.Fatalf("x4 job: %s %+v", x4.Status, x4.Error)
	}
	got, err := png.Decode(bytes.NewReader(download(t, api, x4.Downloads["image"])))
	if err != nil {
		t.Fatal(err)
	}
	if b := got.Bounds(); b.Dx() != 1804 || b.Dy() != 1200 {
		t.Fatalf("x4 result is %v, want 1804x1200", b)
	}

	// The pipeline equals a direct ONNX Runtime run with the same tiling.
	ms, _ := models.Shipped()
	var spec models.Spec
	for _, m := range ms {
		if m.ID() == "realesrgan@general-x4v3" {
			spec, err = models.Fetch(context.Background(), &assets.Cache{Dir: assets.DefaultDir()}, m)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	backend, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := backend.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	img, _, _ := imageio.Decode(input, imageio.Limits{})
	directStart := time.Now()
	y, err := inference.RunTiled(context.Background(), sess.Run, preprocess.ToTensor(img, spec.Input), spec.Tile.Size, spec.Tile.Overlap, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	direct := time.Since(directStart)
	want, err := postprocess.FromTensor(y, spec.Output)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxPixelDiff(got, want); d > 1 {
		t.Errorf("pipeline result differs from a direct run by up to %d levels", d)
	}
	// Brought back down by 4, the result matches the input; and it is sharper than
	// a bicubic upscale of the same input.
	if p := psnr(boxDown(got, 4), img); p < 30 {
		t.Errorf("x4 result downscaled by 4: PSNR %.1f dB against the input, want >= 30", p)
	}
	bicubic := imageio.Resize(img, 1804, 1200)
	if ls, lb := laplacianEnergy(got), laplacianEnergy(bicubic); ls <= 1.5*lb {
		t.Errorf("Laplacian energy %.1f vs bicubic %.1f: want the model's result clearly sharper", ls, lb)
	} else {
		t.Logf("Laplacian energy: Real-ESRGAN %.1f, bicubic %.1f", ls, lb)
	}
	t.Logf("upscale x4 451x300: end to end %s, direct tiled ONNX Runtime %s", latency.Round(time.Millisecond), direct.Round(time.Millisecond))

	x2 := run(`{"scale":2}`)
	if x2.Status != schemas.StatusSucceeded {
		t.Fatalf("x2 job: %s %+v", x2.Status, x2.Error)
	}
	if r := x2.Results["image"]; r.Width != 902 || r.Height != 600 {
		t.Errorf("x2 result is %dx%d, want 902x600", r.Width, r.Height)
	}

	big, err := os.ReadFile(photo(assets.PhotoAstronaut)) // 512x512 -> 2048x2048 = 4 MP
	if err != nil {
		t.Fatal(err)
	}
	resp, body := submit(t, api, "astronaut.png", big, map[string]string{"task": "upscale"})
	var j ingest.JobResponse
	_ = json.Unmarshal(body, &j)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %s %s", resp.Status, body)
	}
	over := waitFinal(t, api, j.ID, time.Minute)
	if over.Status != schemas.StatusFailed || over.Error == nil || over.Error.Code != "output_too_large" {
		t.Errorf("over-limit upscale = %s %+v, want failed with output_too_large", over.Status, over.Error)
	}
}

func maxPixelDiff(a, b image.Image) int {
	d := 0
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, _ := a.At(x, y).RGBA()
			r2, g2, b2, _ := b.At(x, y).RGBA()
			for _, v := range []int{int(r1>>8) - int(r2>>8), int(g1>>8) - int(g2>>8), int(b1>>8) - int(b2>>8)} {
				d = max(d, abs(v))
			}
		}
	}
	return d
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// boxDown averages f x f blocks.
func boxDown(img image.Image, f int) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx()/f, b.Dy()/f))
	for y := range out.Rect.Dy() {
		for x := range out.Rect.Dx() {
			var s [3]uint32
			for dy := range f {
				for dx := range f {
					r, g, bl, _ := img.At(b.Min.X+x*f+dx, b.Min.Y+y*f+dy).RGBA()
					s[0] += r >> 8
					s[1] += g >> 8
					s[2] += bl >> 8
				}
			}
			n := uint32(f * f)
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8((s[0]+n/2)/n), uint8((s[1]+n/2)/n), uint8((s[2]+n/2)/n), 255
		}
	}
	return out
}

func psnr(a, b *image.NRGBA) float64 {
	var se float64
	n := 0
	for y := range a.Rect.Dy() {
		for x := range a.Rect.Dx() {
			i, j := a.PixOffset(x, y), b.PixOffset(x, y)
			for c := range 3 {
				d := float64(a.Pix[i+c]) - float64(b.Pix[j+c])
				se += d * d
				n++
			}
		}
	}
	return 10 * math.Log10(255*255/(se/float64(n)))
}

// laplacianEnergy is the mean squared 4-neighbour Laplacian of the luma: higher is
// sharper.
func laplacianEnergy(img image.Image) float64 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	l := make([]float64, w*h)
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			l[y*w+x] = 0.299*float64(r>>8) + 0.587*float64(g>>8) + 0.114*float64(bl>>8)
		}
	}
	var e float64
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			v := 4*l[y*w+x] - l[y*w+x-1] - l[y*w+x+1] - l[(y-1)*w+x] - l[(y+1)*w+x]
			e += v * v
		}
	}
	return e / float64((w-2)*(h-2))
}
