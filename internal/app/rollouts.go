package app

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// RolloutConfig configures the rollout controller every ingest replica runs (one acts
// at a time) and where its transitions are sent.
type RolloutConfig struct {
	// Webhook receives a JSON POST for every transition (the alert hook).
	Webhook string
	// Interval between the controller's looks.
	Interval time.Duration
}

// RolloutNotifier sends every rollout transition to the log, the audit trail
// (studio.audit.rollout-<state>) and, when configured, the rollout webhook.
func RolloutNotifier(cfg *Config, bus *Bus, log logrus.FieldLogger) rollout.Notifier {
	ns := rollout.Notifiers{
		rollout.LogNotifier{Log: log},
		rollout.AuditNotifier{Audit: auth.NewAuditLog(streams.JSPublisher{JS: bus.JS}), Log: log},
	}
	if cfg.Rollouts.Webhook != "" {
		ns = append(ns, rollout.WebhookNotifier{URL: cfg.Rollouts.Webhook, Log: log})
	}
	return ns
}

// NewRolloutManager opens what people act through (CLI, admin API) on bus.
func NewRolloutManager(ctx context.Context, cfg *Config, bus *Bus, cat *models.Catalog, log logrus.FieldLogger) (*rollout.Manager, error) {
	store, err := rollout.Open(ctx, bus.JS)
	if err != nil {
		return nil, err
	}
	return &rollout.Manager{Store: store, Catalog: cat, Source: rollout.StreamSource{JS: bus.JS}, Notify: RolloutNotifier(cfg, bus, log)}, nil
}

// LoadRouting applies the routing tables stored now to cat, so that a replica routes by
// them from its first request (RunRollouts then follows their changes).
func LoadRouting(ctx context.Context, bus *Bus, cat *models.Catalog) error {
	store, err := rollout.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	for _, t := range schemas.TaskSpecs() {
		tab, ok, err := store.Routing(ctx, t.Task)
		if err != nil {
			return err
		}
		if ok {
			cat.SetRouting(t.Task, &tab.Routing)
		}
	}
	return nil
}

// RunRollouts keeps cat's routing tables in step with the bucket "routing" (every
// ingest replica) and runs a rollout controller that acts while it holds the lease,
// until ctx is cancelled.
func RunRollouts(ctx context.Context, cfg *Config, bus *Bus, cat *models.Catalog, log logrus.FieldLogger) error {
	log = log.WithField("component", "rollouts")
	store, err := rollout.Open(ctx, bus.JS)
	if err != nil {
		return err
	}
	c := &rollout.Controller{
		Store: store, Source: rollout.StreamSource{JS: bus.JS}, Notify: RolloutNotifier(cfg, bus, log), Log: log,
		Config: rollout.ControllerConfig{Interval: cfg.Rollouts.Interval},
	}
	leases, err := streams.BindKV(ctx, bus.JS, streams.BucketLeases)
	if err != nil {
		return err
	}
	// One replica's controller acts at a time, under the "rollouts" lease: the same
	// lease (and bucket) as the job-deadline and retention sweepers.
	lease := &streams.Lease{KV: leases, Name: "rollouts", Holder: cfg.Worker, Log: log}
	errs := make(chan error, 2)
	go func() {
		errs <- rollout.WatchRouting(ctx, bus.JS, func(task schemas.Task, r *models.Routing) {
			cat.SetRouting(task, r)
			if r != nil {
				log.WithField("task", task).WithField("weights", r.Weights).Info("routing table applied")
			}
		})
	}()
	go func() { errs <- lease.Run(ctx, c.Run) }()
	return errors.Join(<-errs, <-errs)
}
