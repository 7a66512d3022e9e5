package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// runSink runs the ClickHouse writer against a shared NATS server.
func runSink(ctx context.Context, args []string, _ io.Writer) error {
	cfg, err := parse("sink", args, nil)
	if err != nil {
		return err
	}
	if !cfg.Sink.Enabled() {
		return errors.New("--clickhouse-addr is required (host:port of the native protocol, e.g. 127.0.0.1:9000)")
	}
	if cfg.NATSURL == "" {
		return errors.New("--nats-url is required: the sink joins a shared NATS server (studio up prints its address)")
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	bus, err := app.Connect(ctx, cfg, "studio-sink", log)
	if err != nil {
		return err
	}
	defer bus.Close()
	sc := cfg.Sink
	sc.Log, sc.Worker = log.WithField("stage", "sink"), cfg.Worker
	return sink.Run(ctx, sc, streams.Engine{JS: bus.JS})
}

// runMigrate creates or upgrades the ClickHouse schema.
func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio migrate", flag.ContinueOnError)
	var cfg sink.Config
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !cfg.Enabled() {
		return errors.New("--clickhouse-addr is required (host:port of the native protocol)")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	applied, err := sink.Migrate(ctx, cfg)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	for _, m := range applied {
		fmt.Fprintln(stdout, "applied", m)
	}
	return nil
}
