package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

const replayUsage = `usage: studio replay --task T --since 24h --to model@version [--sample 10%] [--limit N] [--wait 10m] [--json]

Re-runs past requests of task T from the REQUESTS stream (its retention, 7 days by
default, is the replay window) on model@version, on the shadow lane: the lowest tier's
queue, no result event, no webhook, hidden from the user. Each shadow output is compared
with the original's (mask IoU, PSNR/SSIM, OCR text equality and CER, processing time);
one row per request goes to studio.telemetry.replay (the sink's replay_results table)
and the summary is printed as a table. Erased users' requests are never replayed.

Connects to --nats-url (default: the embedded server of a running studio up,
nats://<--nats-listen>) and to the object store of --s3-endpoint (default: the
JetStream object store); the running studio's workers run the shadow jobs.`

func runReplay(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio replay", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), replayUsage); fs.PrintDefaults() }
	cfg := &app.Config{}
	cfg.RegisterFlags(fs)
	var (
		task, to, since, sample string
		limit                   int
		wait                    time.Duration
		asJSON                  bool
	)
	fs.StringVar(&task, "task", "", "the task whose past requests are replayed (required)")
	fs.StringVar(&since, "since", "24h", "how far back the window starts: a duration (24h) or an RFC 3339 time")
	fs.StringVar(&to, "to", "", "the shadow's model version: model@version (required), e.g. isnet@quint8")
	fs.StringVar(&sample, "sample", "100%", "the share of the window's requests replayed: 10% or 0.1 (the same jobs every time)")
	fs.IntVar(&limit, "limit", 0, "replay at most this many requests (0: all)")
	fs.DurationVar(&wait, "wait", replay.DefaultWait, "how long to wait for the shadow runs; unfinished ones are cancelled and reported failed")
	fs.BoolVar(&asJSON, "json", false, "print the report (replay id, rows, skipped) as JSON instead of the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q\n\n%s", fs.Arg(0), replayUsage)
	}
	if task == "" || to == "" {
		return errors.New("--task and --to model@version are required, e.g. studio replay --task remove-background --since 24h --to isnet@quint8")
	}
	start, err := parseSince(since, time.Now())
	if err != nil {
		return err
	}
	share, err := parseShare(sample)
	if err != nil {
		return err
	}
	w := replay.Window{Task: schemas.Task(task), Since: start, Sample: share, Limit: limit}
	if err := w.Validate(); err != nil {
		return err
	}
	all, _, err := app.Manifests(cfg)
	if err != nil {
		return err
	}
	cat := models.NewCatalog()
	for _, m := range all {
		if err := cat.Add(models.Spec{Manifest: m}); err != nil {
			return err
		}
	}
	spec, err := replay.Target(cat, w.Task, to)
	if err != nil {
		return err
	}
	bus, log, err := connectCLI(ctx, cfg, "studio-replay")
	if err != nil {
		return err
	}
	defer bus.Close()
	store, err := jobs.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	r := &replay.Runner{JS: bus.JS, Jobs: store, Blobs: blobs}
	rep, err := r.Run(ctx, replay.Plan{Window: w, To: spec, Wait: wait})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "replay %s: %s since %s on %s, %d replayed\n", rep.ID, task, start.Format(time.RFC3339), spec.ID(), len(rep.Rows))
	if err := replay.WriteTable(stdout, rep.Summaries); err != nil {
		return err
	}
	s := rep.Skipped
	fmt.Fprintf(stdout, "skipped: %d erased, %d not sampled, %d unfinished, %d gone, %d over the limit, %d shadow, %d chained, %d malformed\n",
		s.Erased, s.NotSampled, s.Unfinished, s.Gone, s.OverLimit, s.Shadow, s.Chained, s.Malformed)
	for _, row := range rep.Rows {
		if row.Outcome != schemas.ReplayCompared {
			fmt.Fprintf(stdout, "failed %s (shadow %s): %s\n", row.JobID, row.ShadowJobID, row.Error)
		}
	}
	return nil
}

// parseSince reads --since: a duration back from now, or an RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--since %q: give a positive duration such as 24h", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: give a duration (24h, 90m) or an RFC 3339 time (2026-12-07T08:00:00Z)", v)
	}
	return t, nil
}

// parseShare reads --sample: "10%" or "0.1".
func parseShare(v string) (float64, error) {
	s, pct := strings.CutSuffix(strings.TrimSpace(v), "%")
	f, err := strconv.ParseFloat(s, 64)
	if pct {
		f /= 100
	}
	if err != nil || f <= 0 || f > 1 {
		return 0, fmt.Errorf("--sample %q: give a share above 0 and at most 100%%, e.g. 10%% or 0.1", v)
	}
	return f, nil
}
