package inference_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/inference/ort"
)

// countingBackend counts sessions opened through the real ONNX Runtime backend.
type countingBackend struct {
	inference.Backend
	opens atomic.Int32
}

func (c *countingBackend) Open(s models.Spec) (inference.Session, error) {
	c.opens.Add(1)
	return c.Backend.Open(s)
}

func TestConcurrentFirstRequestsLoadAModelOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("real model test skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := &assets.Cache{Dir: assets.DefaultDir()}
	lib, err := cache.Ensure(ctx, assets.ONNXRuntimeCPU)
	if err != nil {
		t.Fatal(err)
	}
	path, err := cache.Ensure(ctx, assets.ISNetSmall)
	if err != nil {
		t.Fatal(err)
	}
	real, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	b := &countingBackend{Backend: real}
	cat := models.NewCatalog()
	spec := models.ISNet("small", path)
	if err := cat.Add(spec); err != nil {
		t.Fatal(err)
	}
	step := &inference.Step{Catalog: cat, Backend: b, Config: inference.Config{SessionsPerModel: 2}}
	defer step.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- step.Preload(spec)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := b.opens.Load(); n != 2 {
		t.Errorf("8 concurrent first uses opened %d sessions, want 2 (SessionsPerModel, once)", n)
	}
	if got := step.Loaded(); len(got) != 1 || got[0] != "isnet@small" {
		t.Errorf("Loaded() = %v", got)
	}
}
