package postprocess_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// benchPhotos are the photos `studio bench` submits (internal/bench), read from
// $STUDIO_CACHE/photos (`studio fetch photos`).
var benchPhotos = []string{"astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"}

// BenchmarkPostprocessPhotos is the postprocess stage's handler work on the benchmark
// photos, storage included (an in-process JetStream object store), with the decoded
// input preprocess hands on: remove-background
// with an IS-Net-like 1024x1024 mask, and x4 upscale with the photo enlarged 4x as the
// model's output. That is what `studio bench` charges to postprocess, the model's own
// output aside. Profile it with -cpuprofile.
func BenchmarkPostprocessPhotos(b *testing.B) {
	dir := os.Getenv("STUDIO_CACHE")
	if dir == "" {
		b.Skip("STUDIO_CACHE is not set: run `studio fetch photos` and set it to the cache folder")
	}
	s := streamstest.Start(b)
	store, err := natsobj.Open(context.Background(), s.JS, natsobj.Bucket)
	if err != nil {
		b.Fatal(err)
	}
	cat := models.NewCatalog()
	if err := cat.Add(models.ISNet("small", "/nonexistent")); err != nil {
		b.Fatal(err)
	}
	esrgan := models.Spec{Path: "/nonexistent", Manifest: models.Manifest{
		Name: "realesrgan", Version: "x4", Task: schemas.TaskUpscale, Scale: 4,
		Input:  models.Tensor{Name: "input", Shape: []int64{-1, 3, -1, -1}, Color: "RGB", Std: [3]float32{255, 255, 255}, Resize: "none"},
		Output: models.Tensor{Name: "output", Shape: []int64{-1, 3, -1, -1}, Color: "RGB", Std: [3]float32{255, 255, 255}},
	}}
	if err := cat.Add(esrgan); err != nil {
		b.Fatal(err)
	}
	step := &postprocess.Step{Blobs: store, Catalog: cat}
	ctx := context.Background()
	mask, err := artifact.Quantize(maskTensor(1024), isnet.Output)
	if err != nil {
		b.Fatal(err)
	}
	maskRef, err := artifact.PutPixels(ctx, store, "work/mask.u8", mask)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range benchPhotos {
		data, err := os.ReadFile(filepath.Join(dir, "photos", name))
		if err != nil {
			b.Skipf("benchmark photo missing (run `studio fetch photos`): %v", err)
		}
		info, err := store.Put(ctx, "inputs/"+name, bytes.NewReader(data), int64(len(data)), "")
		if err != nil {
			b.Fatal(err)
		}
		in := schemas.ObjectRef{Key: "inputs/" + name, Size: info.Size, SHA256: info.SHA256}
		img, _, err := imageio.Decode(data, imageio.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		// What preprocess hands on: the decoded input.
		decoded := &schemas.JobEvent{JobID: "decoded-" + name}
		if err := artifact.PutDecoded(ctx, store, decoded, img); err != nil {
			b.Fatal(err)
		}
		w, h := img.Rect.Dx(), img.Rect.Dy()
		nearest := imageio.Resampling{Kernel: imageio.KernelNearest, Coordinates: imageio.Asymmetric, Rounding: imageio.Round}
		px := artifact.Pixels{Shape: []int64{1, 3, int64(4 * h), int64(4 * w)}, Data: make([]byte, 3*16*w*h)}
		nearest.ResizePlanes(img, 4*w, 4*h, px.Data[:16*w*h], px.Data[16*w*h:32*w*h], px.Data[32*w*h:])
		upRef, err := artifact.PutPixels(ctx, store, "work/up-"+name+".u8", px)
		if err != nil {
			b.Fatal(err)
		}
		for _, job := range []struct {
			task   schemas.Task
			model  models.Spec
			output schemas.ObjectRef
		}{{schemas.TaskRemoveBackground, isnet, maskRef}, {schemas.TaskUpscale, esrgan, upRef}} {
			b.Run(string(job.task)+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ev := &schemas.JobEvent{JobID: "bench", Tenant: "local", Tier: schemas.TierNormal, Task: job.task,
						Model: job.model.Name, ModelVersion: job.model.Version, Input: in,
						Artifacts: map[string]schemas.ObjectRef{"output": job.output, artifact.Decoded: decoded.Artifacts[artifact.Decoded]}}
					if errs := step.Process(ctx, []*schemas.JobEvent{ev}); errs[0] != nil {
						b.Fatal(errs[0])
					}
				}
			})
		}
	}
}
