package main

import (
	"context"
	"errors"
	"os"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/sirupsen/logrus"
)

// defaultNATSURL points an operator command without --nats-url at the server of a
// running `studio up` (--nats-listen); it is an error when neither is set.
func defaultNATSURL(cfg *app.Config) error {
	if cfg.NATSURL != "" {
		return nil
	}
	if cfg.NATSListen == "" {
		return errors.New("--nats-url is required")
	}
	cfg.NATSURL = "nats://" + cfg.NATSListen
	return nil
}

// connectCLI connects an operator command (users, rollout, replay) to NATS as name and
// returns the bus with the command's logger (--log-level, to stderr). The caller
// closes the bus.
func connectCLI(ctx context.Context, cfg *app.Config, name string) (*app.Bus, logrus.FieldLogger, error) {
	if err := defaultNATSURL(cfg); err != nil {
		return nil, nil, err
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	bus, err := app.Connect(ctx, cfg, name, log)
	return bus, log, err
}
