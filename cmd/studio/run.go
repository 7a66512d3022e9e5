package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/schemas"
)

func parse(name string, args []string, extra func(*flag.FlagSet)) (*app.Config, error) {
	fs := flag.NewFlagSet("studio "+name, flag.ContinueOnError)
	cfg := &app.Config{}
	cfg.RegisterFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, cfg.Validate()
}

func runUp(ctx context.Context, args []string) error {
	cfg, err := parse("up", args, nil)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	return app.Up(ctx, cfg, log, func(url string) {
		fmt.Printf("\nCreativeAI Studio is running.\n  Open:   %s\n  API:    %s/v1/jobs\n  Submit: curl -F image=@photo.jpg -F task=remove-background %s/v1/jobs\n\n", url, url, url)
	})
}

func runIngest(ctx context.Context, args []string) error {
	cfg, err := parse("ingest", args, nil)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return errors.New("--nats-url is required: ingest joins a shared NATS server (studio up prints its address)")
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	bus, err := app.Connect(ctx, cfg, "studio-ingest", log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	cat, err := app.Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	svc, err := app.NewIngest(ctx, cfg, app.Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log}, nil)
	if err != nil {
		return err
	}
	return app.ServeHTTP(ctx, cfg.HTTPListen, svc.Handler(), func(a net.Addr) {
		log.WithField("addr", a.String()).Info("ingest listening")
	})
}

func runWorker(ctx context.Context, args []string) error {
	var stage string
	cfg, err := parse("worker", args, func(fs *flag.FlagSet) {
		fs.StringVar(&stage, "stage", os.Getenv("STUDIO_STAGE"), "stage to run: preprocess, inference, postprocess or store [STUDIO_STAGE]")
	})
	if err != nil {
		return err
	}
	if stage == "" {
		return errors.New("--stage is required (preprocess, inference, postprocess or store)")
	}
	if cfg.NATSURL == "" {
		return errors.New("--nats-url is required: workers join a shared NATS server (studio up prints its address)")
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	bus, err := app.Connect(ctx, cfg, "studio-worker-"+stage, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	cat, err := app.Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	deps := app.Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log}
	if schemas.Stage(stage) == schemas.StageInference {
		if deps.Backend, err = app.Backend(ctx, cfg, log); err != nil {
			return err
		}
	}
	stages, err := app.NewStage(ctx, cfg, schemas.Stage(stage), deps)
	if err != nil {
		return err
	}
	return app.RunStages(ctx, stages)
}
