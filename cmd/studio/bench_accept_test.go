package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/bench"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// TestBenchAcceptOnlyAgainstStudioIngest runs `studio bench --accept-only --burst` as
// BENCHMARKS.md does: `studio ingest` alone as its own process (no stage runs), the
// bench's uploads on both entries, and the ingest process's CPU per accepted job read
// through --server-pid.
func TestBenchAcceptOnlyAgainstStudioIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("studio bench skipped with -short")
	}
	needCached(t, "studio bench --accept-only", append(append([]assets.Asset{}, bench.Photos...), assets.Web...)...)
	e, err := streams.StartEmbedded(streams.EmbeddedConfig{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	modelDir := identityModel(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv("STUDIO_NATS_URL="+e.ClientURL(), "STUDIO_DATA_DIR="+t.TempDir(), "STUDIO_MODEL_DIR="+modelDir, "STUDIO_MODELS="+testModelID)
	ingest := startDaemon(t, env, "ingest", "--auth", "off", "--http", strings.TrimPrefix(api, "http://"))
	waitFor(t, ingest, time.Minute, "studio ingest serving", func() bool { return httpOK(api + "/health/live") })

	for _, entry := range []string{bench.EntryHTTP, bench.EntryNATS} {
		t.Run(entry, func(t *testing.T) {
			jsonFile := filepath.Join(t.TempDir(), "bench.json")
			r := studio(t, env, "bench", "--accept-only", "--server", api, "--server-pid", strconv.Itoa(ingest.cmd.Process.Pid),
				"--entry", entry, "--task", string(schemas.TaskStyleTransfer), "--model", testModel, "--version", testVersion,
				"--burst", "12", "--concurrency", "3", "--max-side", "64", "--json", jsonFile)
			expect(t, r, 0, "INGEST", "accept rate", "behind --server")
			if !regexp.MustCompile(`accepted / refused\s+12 / 0`).MatchString(r.stdout) {
				t.Fatalf("not every job was accepted\n%s", r)
			}
			b, err := os.ReadFile(jsonFile)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Pipeline struct {
					Succeeded int `json:"succeeded"`
					CacheHits int `json:"cache_hits"`
					ServerCPU *struct {
						PID          int     `json:"pid"`
						CoreMSPerJob float64 `json:"core_ms_per_job"`
					} `json:"server_cpu"`
				} `json:"pipeline"`
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			p := rep.Pipeline
			if p.Succeeded != 12 || p.CacheHits != 0 || p.ServerCPU == nil || p.ServerCPU.PID != ingest.cmd.Process.Pid || p.ServerCPU.CoreMSPerJob < 0 {
				t.Errorf("--json pipeline: %+v server_cpu %+v", p, p.ServerCPU)
			}
		})
	}
	r := studio(t, env, "bench", "--accept-only", "--server", api)
	if r.code == 0 || !strings.Contains(r.stderr, "--burst") {
		t.Errorf("--accept-only without --burst: want a failure naming --burst\n%s", r)
	}
}
