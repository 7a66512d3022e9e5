package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestRolloutCommands(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	url := s.Embedded.ClientURL()
	cases := []struct {
		name     string
		args     []string
		code     int
		want     string
		wantJSON func(t *testing.T, r rollout.Rollout)
	}{
		{"start refuses a version no manifest has", []string{"start", "--to", "realesrgan@nope"}, 1, "not in the catalog", nil},
		{"start refuses steps that do not end at 100", []string{"start", "--to", "realesrgan@animevideov3", "--steps", "5,50"}, 1, "must end at 100", nil},
		{"status of a task without rollouts says how to start one", []string{"status", "upscale"}, 1, "no rollout", nil},
		{"start creates a pending rollout from the default version", []string{"start", "--task", "upscale", "--to", "realesrgan@animevideov3", "--steps", "10,100", "--hold", "3s", "--min-samples", "5", "--by", "ops"}, 0, "upscale realesrgan@general-x4v3 -> animevideov3 in steps [10 100], hold 3s", nil},
		{"a second start waits for the first rollout to end", []string{"start", "--to", "realesrgan@animevideov3"}, 1, "already has an active rollout", nil},
		{"list shows the rollout", []string{"list"}, 0, "realesrgan@animevideov3  pending", nil},
		{"status prints the timeline", []string{"status", "upscale"}, 0, "requested: realesrgan@general-x4v3 → animevideov3", nil},
		{"status --json prints the stored rollout", []string{"status", "upscale", "--json"}, 0, "", func(t *testing.T, r rollout.Rollout) {
			if r.Thresholds.MinSamples != 5 || r.HoldSeconds != 3 || r.CreatedBy != "ops" || r.State != rollout.StatePending {
				t.Errorf("stored %+v", r)
			}
		}},
		{"resume refuses a rollout that is not paused", []string{"resume", "upscale"}, 1, "only a paused rollout resumes", nil},
		{"pause holds it", []string{"pause", "upscale", "--by", "ops"}, 0, "is paused", nil},
		{"resume continues it", []string{"resume", "upscale"}, 0, "is pending", nil},
		{"abort ends it and routes everything to stable", []string{"abort", "upscale"}, 0, "is aborted; animevideov3 gets 0%", nil},
		{"abort of an ended rollout is refused", []string{"abort", "upscale"}, 1, "has already ended", nil},
		{"a verb without its task says what it takes", []string{"pause"}, 1, "takes one task", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"rollout"}, c.args...)
			args = append(args, "--nats-url", url, "--log-level", "error")
			code := run(ctx, args, &out, &errb)
			text := out.String() + errb.String()
			if code != c.code || !strings.Contains(text, c.want) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d containing %q", code, text, c.code, c.want)
			}
			if c.wantJSON != nil {
				var r rollout.Rollout
				if err := json.Unmarshal(out.Bytes(), &r); err != nil {
					t.Fatal(err)
				}
				c.wantJSON(t, r)
			}
		})
	}
	store, err := rollout.Open(ctx, s.JS)
	if err != nil {
		t.Fatal(err)
	}
	tab, ok, err := store.Routing(ctx, "upscale")
	if err != nil || !ok || tab.Weights["general-x4v3"] != 100 || tab.Weights["animevideov3"] != 0 {
		t.Errorf("routing after abort: %+v %v %v", tab, ok, err)
	}
}
