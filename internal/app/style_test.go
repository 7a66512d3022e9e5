package app

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// No style-transfer weights are reachable from this machine, so the mechanism is tested
// with graphs this test builds: a 1x1 convolution that maps every colour v to 1 - v
// (a photographic negative), written in ncnn format and converted to ONNX exactly as an
// operator's model would be with `studio models import-ncnn`. It is a synthetic graph,
// not a style model.
func negativeModel(t *testing.T, dir, version string, size int, resize string) {
	t.Helper()
	in := 3
	if version == "wrong-shape" {
		in = 4 // expects RGBA planes: ONNX Runtime refuses the 3-channel tensor at run time
	}
	param := fmt.Sprintf("7767517\n2 2\nInput input 0 1 data 0=%d 1=%d 2=%d\nConvolution conv 1 1 data out 0=3 1=1 5=1 6=%d\n", size, size, in, 3*in)
	var bin bytes.Buffer
	_ = binary.Write(&bin, binary.LittleEndian, uint32(0)) // float32 weights follow
	for o := range 3 {
		for i := range in {
			w := float32(0)
			if o == i {
				w = -1
			}
			_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(w))
		}
	}
	for range 3 {
		_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(1))
	}
	pp, bp := filepath.Join(dir, version+".param"), filepath.Join(dir, version+".bin")
	if err := os.WriteFile(pp, []byte(param), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bp, bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	onnx, err := models.ConvertNCNN(pp, bp)
	if err != nil {
		t.Fatal(err)
	}
	file := "negative-" + version + ".onnx"
	if err := os.WriteFile(filepath.Join(dir, file), onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	m := models.ImageManifest("negative", version, string(schemas.TaskStyleTransfer), 1, file, onnx, "test-only")
	m = strings.Replace(m, "tile:\n  size: 256\n  overlap: 16\n", "", 1)
	if resize == "bilinear" {
		batch := int64(1)
		if version == "batched" {
			batch = -1
		}
		m = strings.Replace(m, "shape: [-1, 3, -1, -1]\n  std: [255, 255, 255]\n  resize: none", fmt.Sprintf("shape: [%d, 3, %d, %d]\n  std: [255, 255, 255]\n  resize: bilinear", batch, size, size), 1)
		if version == "batched" {
			m = strings.Replace(m, "dynamic_batch: true\n", "dynamic_batch: true\nmax_batch: 4\nmax_wait_ms: 1000\n", 1)
		} else {
			m = strings.Replace(m, "dynamic_batch: true\n", "", 1)
		}
	}
	if version == "any-size" {
		m = strings.Replace(m, "license:", "default: true\nlicense:", 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "negative-"+version+".yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestStyleTransferRunsOperatorModels(t *testing.T) {
	_, _, photo := realAssets(t)
	dir := t.TempDir()
	negativeModel(t, dir, "any-size", 0, "none")
	negativeModel(t, dir, "fixed-64", 64, "bilinear")
	// Fixed-size inputs with a dynamic batch: concurrent jobs share one model call.
	negativeModel(t, dir, "batched", 64, "bilinear")
	// A graph that wants four input channels where the manifest promises RGB.
	negativeModel(t, dir, "wrong-shape", 0, "none")
	api, _ := startUp(t, func(c *Config) { c.ModelDir = dir })
	input, err := os.ReadFile(photo(assets.PhotoChelsea))
	if err != nil {
		t.Fatal(err)
	}
	src, err := png.Decode(bytes.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("concurrent jobs of a batchable model run as one batched call", func(t *testing.T) {
		// Distinct bytes per job, or the result cache would answer the repeats; encoded
		// first and submitted at once, so the jobs reach inference within max_wait even
		// on a loaded machine.
		bodies := make([][]byte, 4)
		for k := range bodies {
			v := imageio.ToNRGBA(src)
			v.Pix[0] += uint8(k + 1)
			var buf bytes.Buffer
			if err := png.Encode(&buf, v); err != nil {
				t.Fatal(err)
			}
			bodies[k] = buf.Bytes()
		}
		ids := make([]string, len(bodies))
		var wg sync.WaitGroup
		for k, b := range bodies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, body := submit(t, api, "chelsea.png", b, map[string]string{"task": "style-transfer", "model": "negative", "version": "batched"})
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("POST = %s %s", resp.Status, body)
					return
				}
				var j ingest.JobResponse
				_ = json.Unmarshal(body, &j)
				ids[k] = j.ID
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		maxBatch := 0
		for _, id := range ids {
			final := waitFinal(t, api, id, 2*time.Minute)
			if final.Status != schemas.StatusSucceeded {
				t.Fatalf("job %s: %s %+v", id, final.Status, final.Error)
			}
			maxBatch = max(maxBatch, final.Stages[schemas.StageInference].BatchSize)
			got, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["image"])))
			if err != nil {
				t.Fatal(err)
			}
			if gm, nm := meanLuma(got), meanLuma(negative(src)); math.Abs(gm-nm) > 3 {
				t.Errorf("job %s: mean luma %.1f, want about %.1f", id, gm, nm)
			}
		}
		if maxBatch < 2 {
			t.Errorf("largest inference batch %d, want jobs submitted together to share a call", maxBatch)
		}
	})
	t.Run("a model that throws at run time fails the job with the runtime's reason", func(t *testing.T) {
		resp, body := submit(t, api, "chelsea.png", input, map[string]string{"task": "style-transfer", "model": "negative", "version": "wrong-shape"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var j ingest.JobResponse
		_ = json.Unmarshal(body, &j)
		final := waitFinal(t, api, j.ID, 2*time.Minute)
		if final.Status != schemas.StatusFailed || final.Error == nil || final.Error.Code != "inference_failed" || !strings.Contains(final.Error.Message, "negative@wrong-shape") {
			t.Errorf("job = %s %+v, want failed with inference_failed naming the model", final.Status, final.Error)
		}
	})
	for _, tc := range []struct {
		name, version string
		tolerance     int
	}{
		{"a dynamic-size model returns the negative of the photo", "any-size", 1},
		{"a fixed-size model runs at 64x64 and comes back at the photo's size", "fixed-64", 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := submit(t, api, "chelsea.png", input, map[string]string{"task": "style-transfer", "model": "negative", "version": tc.version})
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST = %s %s", resp.Status, body)
			}
			var j ingest.JobResponse
			_ = json.Unmarshal(body, &j)
			final := waitFinal(t, api, j.ID, 2*time.Minute)
			if final.Status != schemas.StatusSucceeded {
				t.Fatalf("job: %s %+v", final.Status, final.Error)
			}
			got, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["image"])))
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds() != src.Bounds() {
				t.Fatalf("result is %v, want the input's %v", got.Bounds(), src.Bounds())
			}
			if tc.tolerance == 1 {
				if d := maxPixelDiff(got, negative(src)); d > 1 {
					t.Errorf("result differs from the negative by up to %d levels", d)
				}
				return
			}
			// Through a 64x64 bottleneck only the coarse picture survives: compare means.
			gm, nm := meanLuma(got), meanLuma(negative(src))
			if math.Abs(gm-nm) > 3 {
				t.Errorf("mean luma %.1f, want about %.1f (the negative's)", gm, nm)
			}
		})
	}
}

func negative(img image.Image) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			i := out.PixOffset(x, y)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = 255-uint8(r>>8), 255-uint8(g>>8), 255-uint8(bl>>8), 255
		}
	}
	return out
}

func meanLuma(img image.Image) float64 {
	b := img.Bounds()
	var s float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			s += 0.299*float64(r>>8) + 0.587*float64(g>>8) + 0.114*float64(bl>>8)
		}
	}
	return s / float64(b.Dx()*b.Dy())
}
