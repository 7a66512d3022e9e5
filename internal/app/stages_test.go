package app

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestEveryStageHasAStep(t *testing.T) {
	var built []schemas.Stage
	for name := range steps {
		built = append(built, name)
	}
	slices.Sort(built)
	names := processors.StageNames()
	slices.Sort(names)
	if !slices.Equal(built, names) {
		t.Errorf("internal/app builds steps for %v; processors.Stages declares %v", built, names)
	}
}

// TestStageRowsReachRunnersAndConsumers builds each stage from its row on a real server
// and reads back what the runner got and what the server holds.
func TestStageRowsReachRunnersAndConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := streamstest.Start(t)
	blobs, err := natsobj.Open(ctx, srv.JS, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	cat := models.NewCatalog()
	if err := cat.Add(models.ISNet("small", "/nonexistent")); err != nil {
		t.Fatal(err)
	}
	deps := Deps{Bus: &Bus{NC: srv.NC, JS: srv.JS}, Blobs: blobs, Catalog: cat, Log: log}

	for _, tc := range []struct {
		name        string
		cfg         Config
		ackWait     func(processors.Stage) time.Duration
		concurrency func(processors.Stage) int
	}{
		{
			name:        "without flags each stage runs on its row's values",
			ackWait:     func(r processors.Stage) time.Duration { return r.AckWait },
			concurrency: func(r processors.Stage) int { return r.Concurrency },
		},
		{
			name:        "--ack-wait and --concurrency override every row",
			cfg:         Config{AckWait: 45 * time.Second, Concurrency: 3},
			ackWait:     func(processors.Stage) time.Duration { return 45 * time.Second },
			concurrency: func(processors.Stage) int { return 3 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Worker, cfg.DrainTimeout = "stages-test", 5*time.Second
			for _, row := range processors.Stages {
				var got []streams.RunnerConfig
				if row.PerModel {
					// Building the inference step needs a runtime; the runner config is
					// what this test is about.
					rc, err := runnerConfig(&cfg, row, "isnet", cat)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := rc.Spec.Ensure(ctx, srv.JS); err != nil {
						t.Fatal(err)
					}
					got = append(got, rc)
				} else {
					built, err := NewStage(ctx, &cfg, row.Name, deps)
					if err != nil {
						t.Fatalf("NewStage(%s): %v", row.Name, err)
					}
					for _, s := range built {
						got = append(got, s.Config)
					}
				}
				if len(got) != 1 {
					t.Fatalf("%s: %d runners, want 1", row.Name, len(got))
				}
				rc := got[0]
				if rc.Stage != row.Name || rc.Spec.Timeout != row.Timeout || rc.Concurrency != tc.concurrency(row) || rc.Spec.AckWait != tc.ackWait(row) {
					t.Errorf("%s runner: stage %s, timeout %s, concurrency %d, AckWait %s; want %s, %s, %d, %s",
						row.Name, rc.Stage, rc.Spec.Timeout, rc.Concurrency, rc.Spec.AckWait, row.Name, row.Timeout, tc.concurrency(row), tc.ackWait(row))
				}
				model := ""
				if row.PerModel {
					model = "isnet"
				}
				for _, tier := range schemas.Tiers {
					c, err := srv.JS.Consumer(ctx, row.Stream.Name, rc.Spec.DurableFor(tier))
					if err != nil {
						t.Fatalf("%s %s consumer: %v", row.Name, tier, err)
					}
					info := c.CachedInfo().Config
					if info.FilterSubject != row.Filter(tier, model) || info.AckWait != tc.ackWait(row) ||
						info.MaxDeliver != row.MaxDeliver || info.MaxAckPending != row.MaxAckPending {
						t.Errorf("%s %s consumer on the server: filter %s, AckWait %s, MaxDeliver %d, MaxAckPending %d; want %s, %s, %d, %d",
							row.Name, tier, info.FilterSubject, info.AckWait, info.MaxDeliver, info.MaxAckPending,
							row.Filter(tier, model), tc.ackWait(row), row.MaxDeliver, row.MaxAckPending)
					}
				}
			}
		})
	}
}
