package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
)

// TestSubmitSteps runs `studio submit --steps` against `studio up` serving the identity
// model as style-transfer: a two-step chain saves both steps' named outputs and the
// final image, and an invalid chain is refused with the server's problem naming the step.
func TestSubmitSteps(t *testing.T) {
	needCached(t, "studio submit --steps", append([]assets.Asset{assets.ONNXRuntimeCPU}, assets.Web...)...)
	modelDir := identityModel(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port(t)), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--model-dir", modelDir, "--models", testModelID, "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	env = append(slices.Clone(env), "STUDIO_TOKEN="+tokenLine.FindStringSubmatch(up.stdout.String())[1], "STUDIO_SERVER="+api)
	img := testPNG(t, 40, 30)
	base := strings.TrimSuffix(filepath.Base(img), ".png")

	tests := []struct {
		name string
		args []string
		code int
		want []string // on stdout, or on stderr for a failure
	}{
		{name: "a two-step chain saves every step's outputs and the final image",
			args: []string{"--steps", "style-transfer,style-transfer:strength=0.5"}, code: 0,
			want: []string{base + ".step0.style-transfer.image.png", base + ".step1.style-transfer.image.png", base + ".image.png", "done in"}},
		{name: "a chain the server refuses names the step",
			args: []string{"--steps", "ocr,style-transfer"}, code: 1, want: []string{"steps.1.task"}},
		{name: "a malformed chain is refused before anything is sent",
			args: []string{"--steps", "style-transfer:strength"}, code: 1, want: []string{"--steps", "not name=value"}},
		{name: "steps and per-task flags do not mix",
			args: []string{"--steps", "style-transfer", "--param", "strength=1"}, code: 1, want: []string{"drop --model, --version and --param"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			args := append(append([]string{"submit", "--timeout", "2m", "-o", out}, tt.args...), img)
			r := studio(t, env, args...)
			if r.code != tt.code {
				t.Fatalf("exit status %d, want %d\n%s", r.code, tt.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Fatalf("output lacks %q\n%s", w, r)
				}
			}
		})
	}
}
