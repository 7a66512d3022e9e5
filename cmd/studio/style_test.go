package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models/styletest"
)

// TestSubmitStyle runs `studio submit --style FILE` against `studio up` serving the
// synthetic arbitrary-style graph of internal/models/styletest: the style image goes
// with the content image, and the result comes back at the content's size.
func TestSubmitStyle(t *testing.T) {
	needCached(t, "studio submit --style", append([]assets.Asset{assets.ONNXRuntimeCPU}, assets.Web...)...)
	modelDir := identityModel(t)
	if err := styletest.WriteAdaIN(modelDir); err != nil {
		t.Fatal(err)
	}
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port(t)), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--model-dir", modelDir, "--models", testModelID, "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	env = append(slices.Clone(env), "STUDIO_TOKEN="+tokenLine.FindStringSubmatch(up.stdout.String())[1], "STUDIO_SERVER="+api)

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"submit --style sends the style image and saves the stylised result", []string{"--style", testPNG(t, 24, 16)}, 0, ".image.png"},
		{"an arbitrary-style model without --style gets the server's reason", nil, 1, "style"},
		{"a missing style file is reported before anything is sent", []string{"--style", filepath.Join(t.TempDir(), "nope.png")}, 1, "style image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"submit", "--task", "style-transfer", "--model", styletest.Name, "--version", styletest.Version, "--timeout", "2m", "-o", out}, tc.args...)
			r := studio(t, env, append(args, testPNG(t, 20, 12))...)
			expect(t, r, tc.code)
			if !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Errorf("output does not mention %q\n%s", tc.want, r)
			}
			if tc.code == 0 {
				files, _ := filepath.Glob(filepath.Join(out, "*.image.png"))
				if len(files) != 1 {
					t.Fatalf("saved %v\n%s", files, r)
				}
				if st, err := os.Stat(files[0]); err != nil || st.Size() == 0 {
					t.Errorf("result %s: %v", files[0], err)
				}
			}
		})
	}
	if err := up.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}
