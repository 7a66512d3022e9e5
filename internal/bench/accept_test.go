package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// TestAcceptOnlyBurstRuns runs `studio bench --accept-only --burst` for real, small,
// on both entries: ingest alone in-process (no stage consumes), 50 KB-class uploads
// made distinct per job, every job accepted without a cache hit, the accept rate and
// this process's CPU per job reported.
func TestAcceptOnlyBurstRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the pipeline in-process (needs the cached web assets)")
	}
	for _, entry := range []string{EntryHTTP, EntryNATS} {
		t.Run(entry, func(t *testing.T) {
			var cfg Config
			fs := newFlagSet()
			cfg.RegisterFlags(fs)
			if err := fs.Parse([]string{"--task", "identity", "--accept-only", "--burst", "24", "--concurrency", "4", "--max-side", "64", "--entry", entry}); err != nil {
				t.Fatal(err)
			}
			cfg.Parsed(fs)
			log := logrus.New()
			log.SetOutput(io.Discard)
			rep, err := Run(context.Background(), &cfg, log, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Pipeline
			if p.Succeeded != 24 || p.SubmitErrors != 0 || p.CacheHits != 0 || p.JobsPerSecond <= 0 {
				t.Fatalf("accepted %d of 24 (errors %d %v, cache hits %d), %v jobs/s", p.Succeeded, p.SubmitErrors, p.FirstErrors, p.CacheHits, p.JobsPerSecond)
			}
			if rep.Raw != nil {
				t.Error("--accept-only ran the raw baseline; no model runs")
			}
			if c := p.CPU; c == nil || c.PerJobCPUSeconds <= 0 {
				t.Errorf("cpu: %+v", c)
			}
			if rep.Settings.MeanInputBytes <= 0 || !rep.Settings.AcceptOnly {
				t.Errorf("settings: %+v", rep.Settings)
			}
			var out bytes.Buffer
			if err := rep.Print(&out); err != nil || !regexp.MustCompile(`accepted / refused\s+24 / 0`).MatchString(out.String()) || !strings.Contains(out.String(), "accept rate") {
				t.Errorf("Print: %v\n%s", err, out.String())
			}
		})
	}
}

func TestAcceptOnlyFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{
		{"--accept-only"},                     // no burst
		{"--server-pid", "1", "--burst", "5"}, // no server
	} {
		var cfg Config
		fs := newFlagSet()
		cfg.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err == nil {
			t.Errorf("%q was accepted", args)
		}
	}
}

func TestReadProcCPUOfAProcess(t *testing.T) {
	d, err := parsePIDStat("4242 (studio (x) y) S 1 4242 4242 0 -1 4194560 9081 0 0 0 150 25 0 0 20 0 12 0 3370 1")
	if err != nil || d != 1750*time.Millisecond {
		t.Fatalf("parsePIDStat = %v, %v; want 1.75s (175 ticks)", d, err)
	}
	if _, err := parsePIDStat("4242 (studio) S 1"); err == nil {
		t.Error("a short stat line parsed")
	}
	start, err := readProcCPU(os.Getpid())
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		x := 0
		for i := range 1 << 20 {
			x += i
		}
		_ = x
		if end, _ := readProcCPU(os.Getpid()); end > start {
			return
		}
	}
	t.Error("this process's CPU time did not grow while it spun")
}
