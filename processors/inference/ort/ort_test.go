//go:build cgo

package ort

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models"
)

func cpuLibrary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the ONNX Runtime library; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lib, err := (&assets.Cache{Dir: assets.DefaultDir()}).Ensure(ctx, assets.ONNXRuntimeCPU)
	if err != nil {
		t.Fatalf("%v (run `studio fetch runtime`)", err)
	}
	return lib
}

func TestDeviceSelection(t *testing.T) {
	lib := cpuLibrary(t)
	t.Run("auto on a CPU-only runtime settles on the CPU", func(t *testing.T) {
		b, err := New(Config{LibraryPath: lib, Device: "auto"})
		if err != nil {
			t.Fatal(err)
		}
		if b.Device() != "cpu" {
			t.Errorf("Device() = %q, want cpu", b.Device())
		}
		if why := b.Fallback(); !errors.Is(why, ErrNoCUDAProvider) || !strings.Contains(why.Error(), "studio fetch runtime --gpu") {
			t.Errorf("Fallback() = %v, want ErrNoCUDAProvider naming the fetch command", why)
		}
	})
	t.Run("cuda on a CPU-only runtime is refused with a reason", func(t *testing.T) {
		if _, err := New(Config{LibraryPath: lib, Device: "cuda"}); !errors.Is(err, ErrNoCUDAProvider) {
			t.Errorf("--device cuda without a CUDA provider: %v, want ErrNoCUDAProvider", err)
		}
	})
	t.Run("an unknown device is refused", func(t *testing.T) {
		if _, err := New(Config{LibraryPath: lib, Device: "tpu"}); err == nil {
			t.Error("--device tpu accepted")
		}
	})
}

// TestCUDA runs IS-Net on the GPU when STUDIO_TEST_CUDA_LIB names a CUDA build of ONNX
// Runtime (see the Dockerfile.cuda stage that fetches it) on a machine with a GPU.
// ONNX Runtime loads one library per process, so this test needs its own run:
// STUDIO_TEST_CUDA_LIB=/path/libonnxruntime.so go test -run TestCUDA ./processors/inference/ort
func TestCUDA(t *testing.T) {
	lib := os.Getenv("STUDIO_TEST_CUDA_LIB")
	if lib == "" {
		t.Skip("STUDIO_TEST_CUDA_LIB not set: no CUDA runtime on this machine")
	}
	model, err := (&assets.Cache{Dir: assets.DefaultDir()}).Ensure(context.Background(), assets.ISNetSmall)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{LibraryPath: lib, Device: "cuda"})
	if err != nil {
		t.Fatal(err)
	}
	if b.Device() != "cuda:0" {
		t.Fatalf("Device() = %q", b.Device())
	}
	s, err := b.Open(models.ISNet("small", model))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x := make([]float32, 3*1024*1024)
	y, err := s.Run(context.Background(), tensor(x))
	if err != nil {
		t.Fatal(err)
	}
	if len(y.Data) != 1024*1024 {
		t.Fatalf("output has %d values", len(y.Data))
	}
}
