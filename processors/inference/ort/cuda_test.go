//go:build cgo

package ort

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/creativeai-studio/studio/internal/assets"
)

// cudaChildEnv names the CUDA runtime library in the child process of
// TestCUDARuntimeLoads: ONNX Runtime loads one library per process, and the other tests
// of this package load the CPU build.
const cudaChildEnv = "STUDIO_TEST_ORT_CUDA_CHILD"

// cudaRuntime returns the CUDA build of ONNX Runtime, fetched like `studio fetch runtime
// --gpu` does (about 400 MB of packages on the first run, cached after).
func cudaRuntime(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the CUDA build of ONNX Runtime (`studio fetch runtime --gpu`); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := &assets.Cache{Dir: assets.DefaultDir()}
	var lib string
	for i, a := range assets.RuntimeGPU {
		p, err := cache.Ensure(ctx, a)
		if err != nil {
			t.Fatalf("%v (run `studio fetch runtime --gpu`)", err)
		}
		if i == 0 {
			lib = p
		}
	}
	return lib
}

// TestCUDARuntimeLoads loads the fetched CUDA build in a process of its own and checks
// everything up to the GPU: the CUDA provider's options are created (so the library is a
// CUDA build), and then either the provider appends and a session runs (a GPU host with
// CUDA 13 and cuDNN 9), or it stops on the missing CUDA runtime, auto settles on the
// CPU saying so, and cuda refuses to start with the same reason.
func TestCUDARuntimeLoads(t *testing.T) {
	if lib := os.Getenv(cudaChildEnv); lib != "" {
		cudaRuntimeChild(t, lib)
		return
	}
	lib := cudaRuntime(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCUDARuntimeLoads$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), cudaChildEnv+"="+lib)
	out, err := cmd.CombinedOutput()
	t.Logf("child process:\n%s", out)
	if err != nil {
		t.Fatalf("child process: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestCUDARuntimeLoads") {
		t.Fatal("the child process did not run the test")
	}
	if strings.Contains(string(out), "AppendExecutionProviderCUDA:") {
		// ONNX Runtime's own log names the library the provider could not find.
		const want = "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file"
		if !strings.Contains(string(out), want) {
			t.Errorf("ONNX Runtime's log lacks %q", want)
		}
	}
}

func cudaRuntimeChild(t *testing.T, lib string) {
	auto, err := New(Config{LibraryPath: lib, Device: "auto"})
	if err != nil {
		t.Fatalf("auto: %v", err)
	}
	o, err := ortgo.NewCUDAProviderOptions()
	if err != nil {
		t.Fatalf("NewCUDAProviderOptions on %s: %v (not a CUDA build?)", lib, err)
	}
	defer o.Destroy()
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	appendErr := so.AppendExecutionProviderCUDA(o)
	if appendErr == nil {
		// A GPU host: auto must have picked the GPU, unless no device answers.
		t.Logf("CUDA provider appended; device %s, fallback %v", auto.Device(), auto.Fallback())
		if auto.Device() != "cuda:0" && !strings.Contains(auto.Fallback().Error(), "CUDA session") && !strings.Contains(auto.Fallback().Error(), "CUDA run") {
			t.Errorf("provider appends but auto chose %s: %v", auto.Device(), auto.Fallback())
		}
		return
	}
	// ONNX Runtime's error says only "Failed to load shared library"; the parent checks
	// its log line, and the backend's reason carries the loader's message.
	t.Logf("AppendExecutionProviderCUDA: %v", appendErr)
	if auto.Device() != "cpu" {
		t.Errorf("auto without the CUDA runtime chose %s", auto.Device())
	}
	if why := auto.Fallback(); why == nil || !strings.Contains(why.Error(), "libcublasLt.so.13") || errors.Is(why, ErrNoCUDAProvider) {
		t.Errorf("auto's fallback reason = %v, want the missing libcublasLt.so.13", why)
	}
	_, err = New(Config{LibraryPath: lib, Device: "cuda"})
	if err == nil || !strings.Contains(err.Error(), "--device cuda requested but CUDA is unavailable") || !strings.Contains(err.Error(), "libcublasLt.so.13") {
		t.Errorf("cuda without the CUDA runtime: %v, want a refusal naming libcublasLt.so.13", err)
	}
	cpu, err := New(Config{LibraryPath: lib, Device: "cpu"})
	if err != nil || cpu.Device() != "cpu" || cpu.Fallback() != nil {
		t.Errorf("cpu on the CUDA build: %v, %v, %v", cpu, err, cpu.Fallback())
	}
}
