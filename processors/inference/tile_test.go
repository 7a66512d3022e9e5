package inference_test

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/processors/preprocess"
)

// nearest2x is an exact local "model": every output pixel depends on one input pixel,
// so tiled and untiled runs must agree bit for bit.
func nearest2x(_ context.Context, x artifact.Tensor) (artifact.Tensor, error) {
	n, c, h, w := int(x.Shape[0]), int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
	y := artifact.Tensor{Shape: []int64{int64(n), int64(c), int64(2 * h), int64(2 * w)}, Data: make([]float32, n*c*4*h*w)}
	for p := range n * c {
		for i := range 2 * h {
			for j := range 2 * w {
				y.Data[(p*2*h+i)*2*w+j] = x.Data[(p*h+i/2)*w+j/2]
			}
		}
	}
	return y, nil
}

func TestRunTiledCoversEveryPixelExactlyOnce(t *testing.T) {
	for _, size := range [][2]int{{37, 53}, {128, 128}, {129, 300}, {300, 129}, {96, 97}} {
		h, w := size[0], size[1]
		x := artifact.Tensor{Shape: []int64{1, 3, int64(h), int64(w)}, Data: make([]float32, 3*h*w)}
		for i := range x.Data {
			x.Data[i] = float32(i%997) + 0.25
		}
		want, _ := nearest2x(context.Background(), x)
		calls := 0
		counting := func(ctx context.Context, in artifact.Tensor) (artifact.Tensor, error) {
			calls++
			if in.Shape[0] > 3 {
				t.Errorf("batch of %d tiles, want at most 3", in.Shape[0])
			}
			return nearest2x(ctx, in)
		}
		got, err := inference.RunTiled(context.Background(), counting, x, 64, 8, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("%dx%d: value %d = %v, want %v", h, w, i, got.Data[i], want.Data[i])
			}
		}
		if calls == 0 {
			t.Fatal("model never ran")
		}
	}
}

// TestRealESRGANTiledMatchesUntiled runs the real x4 model on a 256x256 crop of a real
// photo whole and in 128-pixel tiles with a 16-pixel overlap.
// realESRGAN opens a CPU session of the shipped realesrgan@general-x4v3 and decodes the
// astronaut photo (512x512), fetching what the cache lacks.
func realESRGAN(tb testing.TB) (models.Spec, inference.Session, *image.NRGBA) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := &assets.Cache{Dir: assets.DefaultDir()}
	lib, err := cache.Ensure(ctx, assets.ONNXRuntimeCPU)
	if err != nil {
		tb.Fatal(err)
	}
	photo, err := cache.Ensure(ctx, assets.PhotoAstronaut)
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := models.Shipped()
	if err != nil {
		tb.Fatal(err)
	}
	var spec models.Spec
	for _, m := range ms {
		if m.ID() == "realesrgan@general-x4v3" {
			if spec, err = models.Fetch(ctx, cache, m); err != nil {
				tb.Fatal(err)
			}
		}
	}
	backend, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		tb.Fatal(err)
	}
	sess, err := backend.Open(spec)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sess.Close() })
	data, err := os.ReadFile(photo)
	if err != nil {
		tb.Fatal(err)
	}
	img, _, err := imageio.Decode(data, imageio.Limits{})
	if err != nil {
		tb.Fatal(err)
	}
	return spec, sess, img
}

func TestRealESRGANTiledMatchesUntiled(t *testing.T) {
	if testing.Short() {
		t.Skip("real model test skipped with -short")
	}
	ctx := context.Background()
	spec, sess, img := realESRGAN(t)
	sub := imageio.ToNRGBA(img.SubImage(img.Rect.Inset(128)))
	x := preprocess.ToTensor(sub, spec.Input)

	start := time.Now()
	whole, err := sess.Run(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	wholeTime := time.Since(start)
	start = time.Now()
	tiled, err := inference.RunTiled(ctx, sess.Run, x, 128, 16, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("256x256 x4: whole %s, tiled (9 tiles of 128) %s", wholeTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Compare in 0..255 units away from the image border, and look for seams: the
	// error along tile core boundaries must be no worse than elsewhere.
	h, w := int(whole.Shape[2]), int(whole.Shape[3])
	var maxDiff, sum float64
	var n int
	seamRows := map[int]bool{96 * 4: true, 192 * 4: true}
	var seamSum, seamN float64
	for c := range 3 {
		for yy := 16; yy < h-16; yy++ {
			for xx := 16; xx < w-16; xx++ {
				i := (c*h+yy)*w + xx
				d := math.Abs(float64(whole.Data[i]-tiled.Data[i])) * 255
				maxDiff = max(maxDiff, d)
				sum += d
				n++
				if seamRows[yy] || seamRows[xx] {
					seamSum += d
					seamN++
				}
			}
		}
	}
	mean := sum / float64(n)
	t.Logf("tiled vs whole: mean |diff| %.4f, max %.3f (0..255), at seams %.4f", mean, maxDiff, seamSum/seamN)
	if mean > 0.5 || maxDiff > 8 {
		t.Errorf("tiled output differs from whole: mean %.4f, max %.3f", mean, maxDiff)
	}
	// A seam would show as a line of error well above one grey level.
	if seamSum/seamN > 0.5 {
		t.Errorf("seams: mean error at tile boundaries %.4f (0..255), overall %.4f", seamSum/seamN, mean)
	}
}

// BenchmarkRealESRGANTileBatch upscales the 512x512 astronaut x4 in the shipped
// manifest's tiles (256 px, 16 px overlap: 9 tiles), 1, 2, 4 or 9 tiles per model call.
// One op is one image; compare the batch sizes with each other (--tile-batch).
func BenchmarkRealESRGANTileBatch(b *testing.B) {
	if testing.Short() {
		b.Skip("real model benchmark skipped with -short")
	}
	spec, sess, img := realESRGAN(b)
	x := preprocess.ToTensor(img, spec.Input)
	ctx := context.Background()
	if _, err := inference.RunTiled(ctx, sess.Run, x, spec.Tile.Size, spec.Tile.Overlap, spec.Scale, 4); err != nil {
		b.Fatal(err) // warm-up
	}
	for _, batch := range []int{1, 2, 4, 9} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for b.Loop() {
				if _, err := inference.RunTiled(ctx, sess.Run, x, spec.Tile.Size, spec.Tile.Overlap, spec.Scale, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
