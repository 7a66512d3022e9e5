package inference_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestGenerateBlacksOutFlaggedImages runs a generate job through the inference step with
// a test export whose safety checker flags every image (threshold far below any CLIP
// mean): the output images are black, the event names them for postprocess to flag,
// a warning names them and the step counts them.
func TestGenerateBlacksOutFlaggedImages(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the ONNX Runtime library; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lib, err := (&assets.Cache{Dir: assets.DefaultDir()}).Ensure(ctx, assets.ONNXRuntimeCPU)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := diffusiontest.WriteExport(filepath.Join(dir, "sd"), diffusiontest.Options{Safety: true, SafetyThreshold: -100}); err != nil {
		t.Fatal(err)
	}
	m, err := models.ParseManifest(filepath.Join(dir, "sd.yaml"), []byte("name: sd\nversion: test\ntask: generate\nsource:\n  export: sd\ndiffusion:\n  steps: 2\n  width: 64\n  height: 64\n  safety: required\n"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := models.Fetch(ctx, &assets.Cache{Dir: t.TempDir()}, m)
	if err != nil {
		t.Fatal(err)
	}
	cat := models.NewCatalog()
	if err := cat.Add(spec); err != nil {
		t.Fatal(err)
	}
	srv := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, srv.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	step := &inference.Step{Blobs: blobs, Catalog: cat, Backend: backend, Log: log}
	defer step.Close()

	tok, err := diffusion.LoadTokenizer(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []float32
	for _, id := range append(tok.Encode("blurry"), tok.Encode("a photo of a cat")...) {
		ids = append(ids, float32(id))
	}
	tokens, err := artifact.PutTensor(ctx, blobs, "work/j1/tokens.f32", artifact.Tensor{Shape: []int64{2, diffusion.ContextLength}, Data: ids})
	if err != nil {
		t.Fatal(err)
	}
	ev := &schemas.JobEvent{JobID: "j1", Task: schemas.TaskGenerate, Model: "sd", ModelVersion: "test",
		Params: map[string]any{"seed": float64(7), "num_images": float64(2)}, Artifacts: map[string]schemas.ObjectRef{"tokens": tokens}}
	if errs := step.Process(ctx, []*schemas.JobEvent{ev}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	px, err := artifact.GetPixels(ctx, blobs, ev.Artifacts["output"])
	if err != nil {
		t.Fatal(err)
	}
	if len(px.Data) != 2*3*64*64 {
		t.Fatalf("output %v, want two 64x64 images", px.Shape)
	}
	for i, v := range px.Data {
		if v != 0 {
			t.Fatalf("byte %d is %d: the flagged images are not black", i, v)
		}
	}
	if n := step.BlackedOut(spec.ID()); n != 2 {
		t.Errorf("BlackedOut = %d, want 2", n)
	}
	if !slices.Equal(ev.Unsafe, []int{0, 1}) {
		t.Errorf("event marks images %v unsafe, want [0 1] (postprocess flags their results)", ev.Unsafe)
	}
	var warned bool
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel && e.Data["job_id"] == "j1" {
			imgs, _ := e.Data["images"].([]int)
			warned = len(imgs) == 2 && imgs[0] == 0 && imgs[1] == 1
		}
	}
	if !warned {
		t.Errorf("no warning naming images [0 1] of job j1; log: %v", hook.AllEntries())
	}
}
