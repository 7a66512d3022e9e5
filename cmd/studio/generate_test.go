package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

// TestSubmitGenerate runs `studio submit --task generate --prompt ...` against `studio
// up` serving a test Stable Diffusion export (synthetic random-weight graphs with the
// real export's names, shapes and dtypes): the CLI sends no image, prints every
// denoising step it sees, and saves the image, which is the same image the API test
// gets for the same prompt and seed (internal/app/testdata/generate-golden.txt).
func TestSubmitGenerate(t *testing.T) {
	needCached(t, "studio submit --task generate", append([]assets.Asset{assets.ONNXRuntimeCPU}, assets.Web...)...)
	modelDir := identityModel(t)
	if err := diffusiontest.WriteExport(filepath.Join(modelDir, "tiny-sd"), diffusiontest.Options{}); err != nil {
		t.Fatal(err)
	}
	manifest := "name: tiny-sd\nversion: test\ntask: generate\nlicense: test-only\nsource:\n  export: tiny-sd\ndiffusion:\n  steps: 4\n  width: 64\n  height: 64\n"
	if err := os.WriteFile(filepath.Join(modelDir, "tiny-sd.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port(t)), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--model-dir", modelDir, "--models", testModelID, "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	env = append(slices.Clone(env), "STUDIO_TOKEN="+tokenLine.FindStringSubmatch(up.stdout.String())[1], "STUDIO_SERVER="+api)

	t.Run("submit --prompt runs the job, shows its steps and saves the image", func(t *testing.T) {
		out := t.TempDir()
		r := studio(t, env, "submit", "--task", "generate", "--prompt", "a photo of a red cat", "--negative-prompt", "blurry",
			"--param", "seed=42", "--param", "steps=6", "--param", "guidance=7.5", "--timeout", "2m", "-o", out)
		expect(t, r, 0, "queued (seed 42)", "step 6/6", ".image.png", "done in")
		files, _ := filepath.Glob(filepath.Join(out, "*.image.png"))
		if len(files) != 1 {
			t.Fatalf("saved %v\n%s", files, r)
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "..", "internal", "app", "testdata", "generate-golden.txt"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != strings.TrimSpace(string(want)) {
			t.Errorf("image sha256 %s, the API's golden image is %s", got, want)
		}
	})
	t.Run("submit --task generate with an image file is refused before anything is sent", func(t *testing.T) {
		r := studio(t, env, "submit", "--task", "generate", "--prompt", "x", testPNG(t, 8, 8))
		expect(t, r, 1)
		if !strings.Contains(r.stderr, "generate takes no image") {
			t.Errorf("stderr does not explain\n%s", r)
		}
	})
	t.Run("submit --task generate without a prompt gets the server's reason", func(t *testing.T) {
		r := studio(t, env, "submit", "--task", "generate", "--param", "seed=1", "--timeout", "30s")
		expect(t, r, 1)
		if !strings.Contains(r.stderr, "prompt") {
			t.Errorf("stderr does not name the prompt\n%s", r)
		}
	})
	if err := up.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}
