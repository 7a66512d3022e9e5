package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/assets"
)

// deviceChildEnv carries the device to test into the child process of
// TestDeviceFallbackIsLogged: ONNX Runtime loads one library per process, and this
// package's other tests load the CPU build.
const deviceChildEnv = "STUDIO_TEST_APP_DEVICE_CHILD"

// TestDeviceFallbackIsLogged starts the inference backend on the fetched CUDA build of
// ONNX Runtime (`studio fetch runtime --gpu`) on a machine without the CUDA 13 runtime:
// --device auto runs on the CPU and logs why, --device cuda refuses to start.
func TestDeviceFallbackIsLogged(t *testing.T) {
	if dev := os.Getenv(deviceChildEnv); dev != "" {
		deviceChild(t, dev)
		return
	}
	if testing.Short() {
		t.Skip("needs the CUDA build of ONNX Runtime (`studio fetch runtime --gpu`); skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := (&assets.Cache{Dir: assets.DefaultDir()}).EnsureAll(ctx, assets.RuntimeGPU...); err != nil {
		t.Fatalf("%v (run `studio fetch runtime --gpu`)", err)
	}
	if _, err := os.Stat("/dev/nvidia0"); err == nil {
		t.Skip("this machine has an NVIDIA GPU: the fallback is not what happens here (scripts/gpu-check.sh tests the GPU)")
	}
	child := func(device string) (stdout, stderr string) {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDeviceFallbackIsLogged$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), deviceChildEnv+"="+device, "STUDIO_CACHE="+assets.DefaultDir())
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("child process for --device %s: %v\n%s\n%s", device, err, o.String(), e.String())
		}
		return o.String(), e.String()
	}
	t.Run("auto falls back to the CPU and logs the missing CUDA library", func(t *testing.T) {
		out, _ := child("auto")
		var warn map[string]any
		for _, line := range strings.Split(out, "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(strings.TrimSpace(line)), &e) == nil && e["level"] == "warning" {
				warn = e
			}
		}
		if warn == nil {
			t.Fatalf("no warning logged:\n%s", out)
		}
		if msg := warn["msg"]; msg != "--device auto: CUDA unavailable; running inference on CPU" {
			t.Errorf("message = %q", msg)
		}
		if reason, _ := warn["error"].(string); !strings.Contains(reason, "libcublasLt.so.13: cannot open shared object file") {
			t.Errorf("reason = %q, want the missing libcublasLt.so.13", reason)
		}
		if !strings.Contains(out, `"device":"cpu"`) {
			t.Errorf("no device=cpu selection logged:\n%s", out)
		}
	})
	t.Run("cuda refuses to start with the reason", func(t *testing.T) {
		out, _ := child("cuda")
		for _, want := range []string{"--device cuda requested but CUDA is unavailable", "libcublasLt.so.13", "Dockerfile.cuda"} {
			if !strings.Contains(out, want) {
				t.Errorf("refusal lacks %q:\n%s", want, out)
			}
		}
	})
}

// deviceChild starts the backend on the fetched CUDA build (the default library for
// --device cuda; named with --ort-lib for auto) and prints its log as JSON to stdout.
func deviceChild(t *testing.T, device string) {
	log := logrus.New()
	log.SetOutput(os.Stdout)
	log.SetFormatter(&logrus.JSONFormatter{})
	cfg := &Config{CacheDir: assets.DefaultDir(), Device: device}
	if device == "auto" {
		cfg.ORTLib = assets.DefaultDir() + "/" + assets.ONNXRuntimeCUDA.Path
	}
	b, err := Backend(context.Background(), cfg, log)
	switch device {
	case "auto":
		if err != nil {
			t.Fatalf("--device auto did not start: %v", err)
		}
		if b.Device() != "cpu" {
			t.Fatalf("--device auto chose %s without the CUDA runtime", b.Device())
		}
	case "cuda":
		if err == nil {
			t.Fatalf("--device cuda started on %s without the CUDA runtime", b.Device())
		}
		os.Stdout.WriteString("refused: " + err.Error() + "\n")
	}
}
