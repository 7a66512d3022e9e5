package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

// TestReplayCommand runs `studio up` with IS-Net small, submits two photos with `studio
// submit`, and replays them with `studio replay` to the same version: the table shows
// both compared with IoU 1 and --json gives the rows; bad flags say what to give.
func TestReplayCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("real-model test skipped with -short")
	}
	needCached(t, "studio replay", append([]assets.Asset{assets.ONNXRuntimeCPU, assets.ISNetSmall, assets.PhotoAstronaut, assets.PhotoCoffee}, assets.Web...)...)

	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", strings.TrimPrefix(natsURL, "nats://"), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--models", "isnet@small", "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	token := tokenLine.FindStringSubmatch(up.stdout.String())[1]

	var photos []string
	for _, a := range []assets.Asset{assets.PhotoAstronaut, assets.PhotoCoffee} {
		photos = append(photos, filepath.Join(assets.DefaultDir(), filepath.FromSlash(a.Path)))
	}
	r := studio(t, append(slices.Clone(env), "STUDIO_TOKEN="+token), append([]string{"submit", "--server", api, "--task", "remove-background", "-o", t.TempDir()}, photos...)...)
	expect(t, r, 0)

	replayCmd := []string{"replay", "--nats-url", natsURL, "--log-level", "error", "--task", "remove-background", "--since", "1h"}
	t.Run("replay to the same version matches every job", func(t *testing.T) {
		r := studio(t, env, append(replayCmd, "--to", "isnet@small")...)
		expect(t, r, 0, "2 replayed", "IOU (MEAN/MIN)", "1.0000/1.0000", "skipped: 0 erased")
		if !regexp.MustCompile(`(?m)^remove-background\s+isnet\s+small\s+small\s+2\s+2\s+0\s`).MatchString(r.stdout) {
			t.Fatalf("the table does not show 2 requests, 2 compared, 0 failed\n%s", r)
		}
	})
	t.Run("--json prints the rows, and earlier shadow runs are never replayed", func(t *testing.T) {
		r := studio(t, env, append(replayCmd, "--to", "isnet@small", "--limit", "1", "--json")...)
		expect(t, r, 0)
		var rep replay.Report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v\n%s", err, r)
		}
		if len(rep.Rows) != 1 || rep.Rows[0].Outcome != schemas.ReplayCompared || rep.Rows[0].IoU == nil || *rep.Rows[0].IoU != 1 {
			t.Fatalf("rows %+v", rep.Rows)
		}
		if rep.Skipped.Shadow != 2 || rep.Skipped.OverLimit != 1 {
			t.Fatalf("skipped %+v, want the first replay's 2 shadow runs and 1 over the limit", rep.Skipped)
		}
	})
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"a version no manifest has is refused", []string{"--to", "isnet@nope"}, "not in the catalog"},
		{"a version of another task is refused", []string{"--to", "realesrgan@general-x4v3"}, "serves upscale, not remove-background"},
		{"a sample of nothing is refused", []string{"--to", "isnet@small", "--sample", "0%"}, "give a share above 0"},
		{"a since that is no time is refused", []string{"--to", "isnet@small", "--since", "yesterday"}, "give a duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := studio(t, env, append(replayCmd, c.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("want exit 1 saying %q\n%s", c.want, r)
			}
		})
	}
	if err := up.stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}
