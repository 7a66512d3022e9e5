package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
)

const rolloutUsage = `usage: studio rollout COMMAND [flags]

  start   --task T --to model@version [--steps 5,50,100] [--hold 10m] [thresholds]
          move T's unversioned jobs to the version in steps; the controller promotes,
          pauses or rolls back by itself
  status  TASK [--json]          the task's rollout: timeline, routing table, both versions' figures
  list                           every task's latest rollout
  pause   TASK                   hold the weights where they are
  resume  TASK                   continue a paused rollout (its step's hold starts again)
  abort   TASK                   send every unversioned job back to stable

Connects to --nats-url (default: the embedded server of a running studio up, nats://<--nats-listen>);
the running studio's ingest replicas apply the weights and run the controller.
Every change is audited (studio.audit.rollout-<state>) with --by as the actor.`

// rolloutVerbs are the rollout commands.
var rolloutVerbs = []string{"start", "status", "list", "pause", "resume", "abort"}

func runRollout(ctx context.Context, args []string, stdout io.Writer) error {
	sub, fs, done, err := verbOf("rollout", rolloutVerbs, args, rolloutUsage, stdout)
	if done {
		return err
	}
	cfg := &app.Config{}
	cfg.RegisterFlags(fs)
	var (
		req             rollout.Request
		task, to, steps string
		hold            time.Duration
		by              = defaultActor()
		asJSON          bool
		th              rollout.Thresholds
	)
	if sub == "start" {
		fs.StringVar(&task, "task", "", "the task whose unversioned jobs move (default: the version's task)")
		fs.StringVar(&to, "to", "", "the canary: model@version, e.g. realesrgan@animevideov3")
		fs.StringVar(&steps, "steps", "5,50,100", "the canary's shares in percent, increasing, ending at 100")
		fs.DurationVar(&hold, "hold", rollout.DefaultHold, "how long each step must stay clean before the next")
		fs.Float64Var(&th.MaxErrorRate, "max-error-rate", 0.01, "roll back when the canary's failed share (bad input excluded) reaches this")
		fs.Float64Var(&th.MaxFallbackRate, "max-fallback-rate", 0.01, "roll back when the canary's share of fallbacks reaches this")
		fs.Float64Var(&th.LatencyRatio, "latency-ratio", 2, "pause when a stage's canary p95 reaches this multiple of stable's")
		fs.Func("latency-stages", "stages whose p95 is judged, comma separated (total: all stages summed); default inference,total", func(v string) error {
			th.LatencyStages = strings.Split(v, ",")
			return nil
		})
		fs.Float64Var(&th.LatencyFloorMS, "latency-floor-ms", 20, "stage p95s under this many ms never pause")
		fs.IntVar(&th.MinSamples, "min-samples", 20, "canary jobs a step needs before it is judged")
	}
	if sub == "status" {
		fs.BoolVar(&asJSON, "json", false, "print the rollout as JSON")
	}
	fs.StringVar(&by, "by", by, "who runs the command, for the audit trail")
	// The task of status/pause/resume/abort may come before or after the flags.
	rest := args[1:]
	var pos []string
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) > 0 {
			pos, rest = append(pos, rest[0]), rest[1:]
		}
	}
	needTask := sub != "start" && sub != "list"
	switch {
	case needTask && len(pos) != 1:
		return fmt.Errorf("studio rollout %s takes one task, e.g. `studio rollout %s upscale`", sub, sub)
	case !needTask && len(pos) > 0:
		return fmt.Errorf("unexpected argument %q\n\n%s", pos[0], rolloutUsage)
	}
	if needTask {
		task = pos[0]
	}
	if sub == "start" {
		if to == "" {
			return errors.New("--to model@version is required")
		}
		req = rollout.Request{Task: schemas.Task(task), To: to, Hold: hold.String(), Thresholds: th, By: by}
		for _, s := range strings.Split(steps, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return fmt.Errorf("--steps %q: give percentages such as 5,50,100", steps)
			}
			req.Steps = append(req.Steps, n)
		}
	}
	bus, log, err := connectCLI(ctx, cfg, "studio-rollout")
	if err != nil {
		return err
	}
	defer bus.Close()
	// The catalog of every known manifest checks --to; the running studio routes only
	// to versions its own catalog has (--models).
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
	m, err := app.NewRolloutManager(ctx, cfg, bus, cat, log)
	if err != nil {
		return err
	}
	return rolloutCommand(ctx, m, sub, req, schemas.Task(task), by, asJSON, stdout)
}

// rolloutCommand runs one rollout command on m.
func rolloutCommand(ctx context.Context, m *rollout.Manager, sub string, req rollout.Request, task schemas.Task, by string, asJSON bool, stdout io.Writer) error {
	var (
		r   *rollout.Rollout
		err error
	)
	switch sub {
	case "start":
		r, err = m.Start(ctx, req)
		if err == nil {
			fmt.Fprintf(stdout, "started %s: %s %s@%s -> %s in steps %v, hold %s; the controller takes the first step within seconds\n",
				r.ID, r.Task, r.Model, r.Stable, r.Canary, r.Steps, r.Hold())
		}
		return err
	case "list":
		list, err := m.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tROLLOUT\tSTABLE\tCANARY\tSTATE\tWEIGHT\tUPDATED")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s@%s\t%s\t%d%%\t%s\n", r.Task, r.ID, r.Model, r.Stable, r.Model, r.Canary, r.State, r.Weight, r.UpdatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "status":
		r, err = m.Get(ctx, task)
		if err != nil {
			return err
		}
		canary, stable, err := m.Live(ctx, r)
		if err != nil {
			return err
		}
		tab, _, err := m.Store.Routing(ctx, task)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(struct {
				*rollout.Rollout
				Live    map[string]*rollout.Figures `json:"live,omitempty"`
				Routing *rollout.Table              `json:"routing,omitempty"`
			}{r, map[string]*rollout.Figures{"canary": canary, "stable": stable}, tab})
		}
		printRollout(stdout, r, canary, stable, tab)
		return nil
	case "pause":
		r, err = m.Pause(ctx, task, by)
	case "resume":
		r, err = m.Resume(ctx, task, by)
	case "abort":
		r, err = m.Abort(ctx, task, by)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is %s; %s gets %d%% of unversioned %s jobs\n", r.ID, r.State, r.Canary, r.Weights()[r.Canary], r.Task)
	return nil
}

// printRollout writes a rollout, its routing table, both versions' figures side by
// side and its timeline.
func printRollout(w io.Writer, r *rollout.Rollout, canary, stable *rollout.Figures, tab *rollout.Table) {
	fmt.Fprintf(w, "%s  %s  %s@%s -> %s  %s at %d%% (step %d of %d, hold %s)\n", r.ID, r.Task, r.Model, r.Stable, r.Canary, r.State, r.Weight, r.Step+1, len(r.Steps), r.Hold())
	if tab != nil {
		fmt.Fprintf(w, "routing: %v (written %s)\n", tab.Weights, tab.UpdatedAt.Format(time.RFC3339))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if canary != nil {
		fmt.Fprintln(tw, "\nTHIS STEP\tJOBS\tFAILED\tERROR RATE\tFALLBACKS\tP95 INFERENCE MS\tP95 TOTAL MS\tTHUMBS DOWN")
		for _, f := range []*rollout.Figures{stable, canary} {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%d\t%.0f\t%.0f\t%d/%d\n", f.Version, f.Jobs, f.Failed, 100*f.ErrorRate, f.Fallbacks, f.P95MS["inference"], f.P95MS["total"], f.ThumbsDown, f.Ratings)
		}
	}
	fmt.Fprintln(tw, "\nTIME\tSTATE\tWEIGHT\tBY\tREASON")
	for _, t := range r.Timeline {
		fmt.Fprintf(tw, "%s\t%s\t%d%%\t%s\t%s\n", t.At.Format("15:04:05"), t.To, t.Weight, t.Actor, t.Reason)
	}
	tw.Flush()
}
