package preprocess_test

import (
	"bytes"
	"context"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
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

// benchPhotos are the photos `studio bench` submits (internal/bench), read from
// $STUDIO_CACHE/photos (`studio fetch photos`).
var benchPhotos = []string{"astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"}

func loadBenchPhotos(b *testing.B) map[string][]byte {
	b.Helper()
	dir := os.Getenv("STUDIO_CACHE")
	if dir == "" {
		b.Skip("STUDIO_CACHE is not set: run `studio fetch photos` and set it to the cache folder")
	}
	out := map[string][]byte{}
	for _, name := range benchPhotos {
		data, err := os.ReadFile(filepath.Join(dir, "photos", name))
		if err != nil {
			b.Skipf("benchmark photo missing (run `studio fetch photos`): %v", err)
		}
		out[name] = data
	}
	return out
}

// BenchmarkPreprocessPhotos is the preprocess stage's handler work on the benchmark
// photos for remove-background (isnet-small) and upscale (no resize), storage included
// (an in-process JetStream object store): what `studio bench` charges to preprocess.
// Profile it with -cpuprofile.
func BenchmarkPreprocessPhotos(b *testing.B) {
	photos := loadBenchPhotos(b)
	s := streamstest.Start(b)
	store, err := natsobj.Open(context.Background(), s.JS, natsobj.Bucket)
	if err != nil {
		b.Fatal(err)
	}
	cat := models.NewCatalog()
	if err := cat.Add(models.ISNet("small", "/nonexistent")); err != nil {
		b.Fatal(err)
	}
	step := &preprocess.Step{Blobs: store, Catalog: cat}
	ctx := context.Background()
	for _, name := range benchPhotos {
		info, err := store.Put(ctx, "inputs/local/"+name, bytes.NewReader(photos[name]), int64(len(photos[name])), "")
		if err != nil {
			b.Fatal(err)
		}
		ref := schemas.ObjectRef{Key: "inputs/local/" + name, Size: info.Size, SHA256: info.SHA256}
		b.Run("remove-background/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := &schemas.JobEvent{JobID: "bench", Tenant: "local", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "small", Input: ref}
				if errs := step.Process(ctx, []*schemas.JobEvent{ev}); errs[0] != nil {
					b.Fatal(errs[0])
				}
			}
		})
	}
}
