package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/metrics"
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

// processLogger is the JSON logger of a long-running process, thinned by --log-sample.
func processLogger(cfg *app.Config) (logrus.FieldLogger, error) {
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return nil, err
	}
	if e, ok := log.(*logrus.Entry); ok {
		metrics.SampleSuccessLogs(e.Logger, cfg.LogSample)
	}
	return log, nil
}

func runUp(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parse("up", args, nil)
	if err != nil {
		return err
	}
	log, err := processLogger(cfg)
	if err != nil {
		return err
	}
	return app.UpWithToken(ctx, cfg, log, func(url, token string) {
		if token == "" {
			fmt.Fprintf(stdout, "\nCreativeAI Studio is running.\n  Open:   %s\n  API:    %s/v2/jobs\n  Submit: curl -F image=@photo.jpg -F task=remove-background %s/v2/jobs\n\n", url, url, url)
			return
		}
		// The token is an API key of the development user (tenant "local"): the page
		// takes it from the URL fragment (never sent to the server in the URL) and keeps
		// it; the next start revokes it and prints a new one.
		fmt.Fprintf(stdout, "\nCreativeAI Studio is running.\n  Open:   %s/#token=%s\n  API:    %s/v2/jobs\n  Token:  %s\n  Submit: curl -H \"Authorization: Bearer %s\" -F image=@photo.jpg -F task=remove-background %s/v2/jobs\n\n", url, token, url, token, token, url)
	})
}

func runIngest(ctx context.Context, args []string, _ io.Writer) error {
	cfg, err := parse("ingest", args, nil)
	if err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return errors.New("--nats-url is required: ingest joins a shared NATS server (studio up prints its address)")
	}
	log, err := processLogger(cfg)
	if err != nil {
		return err
	}
	m, stopTracing, err := app.NewMetrics(ctx, cfg, "ingest", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	bus, err := app.Connect(ctx, cfg, "studio-ingest", log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	blobs = m.InstrumentBlobs(blobs, app.BlobBackend(cfg))
	cat, err := app.Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	svc, err := app.NewIngest(ctx, cfg, app.Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log, Metrics: m}, nil)
	if err != nil {
		return err
	}
	// Ingest reports every stage's queues, so a stage with no live worker still shows
	// its growing backlog.
	go m.PollQueues(ctx, metrics.DefaultQueueInterval, app.QueueSource(bus, nil, cat), log)
	go m.PollStreams(ctx, metrics.DefaultQueueInterval, app.StreamSource(bus), log)
	return app.ServeIngest(ctx, cfg, bus, svc, m, log, m.Serve(svc.Handler()), func(a net.Addr) {
		log.WithField("addr", a.String()).Info("ingest listening")
	})
}

func runWorker(ctx context.Context, args []string, _ io.Writer) error {
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
	log, err := processLogger(cfg)
	if err != nil {
		return err
	}
	m, stopTracing, err := app.NewMetrics(ctx, cfg, "worker-"+stage, log)
	if err != nil {
		return err
	}
	defer stopTracing()

	// /metrics and /health come up first, so a startup probe sees the process alive
	// while models load; ready waits for the stage to run, and ends when the drain
	// begins. The listener outlives the drain, so the last metrics can be scraped.
	var bus *app.Bus
	var running atomic.Bool // set after bus is assigned: readers that see it may use bus
	ready := func(rctx context.Context) error {
		switch {
		case ctx.Err() != nil:
			return errors.New("shutting down: draining in-flight work")
		case !running.Load():
			return errors.New("starting: connecting to NATS and loading models")
		}
		return app.BusReady(rctx, bus)
	}
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpErr := make(chan error, 1)
	listening := make(chan struct{})
	var once sync.Once
	go func() {
		httpErr <- app.ServeHTTP(httpCtx, cfg.HTTPListen, m.AdminHandler(ready), func(a net.Addr) {
			log.WithField("addr", a.String()).Info("worker serving /metrics, /health/live and /health/ready")
			once.Do(func() { close(listening) })
		})
	}()
	defer func() {
		stopHTTP()
		<-httpErr
	}()
	select {
	case <-listening:
	case err := <-httpErr:
		httpErr <- err // for the deferred wait
		return err
	}

	bus, err = app.Connect(ctx, cfg, "studio-worker-"+stage, log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := app.OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	blobs = m.InstrumentBlobs(blobs, app.BlobBackend(cfg))
	cat, err := app.Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	deps := app.Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log, Metrics: m}
	if schemas.Stage(stage) == schemas.StageInference {
		if deps.Backend, err = app.Backend(ctx, cfg, log); err != nil {
			return err
		}
	}
	stages, err := app.NewStage(ctx, cfg, schemas.Stage(stage), deps)
	if err != nil {
		return err
	}
	pollCtx, stopPoll := context.WithCancel(httpCtx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		m.PollQueues(pollCtx, metrics.DefaultQueueInterval, app.QueueSource(bus, []schemas.Stage{schemas.Stage(stage)}, cat), log)
	}()
	defer func() { stopPoll(); <-polled }() // before bus.Close
	running.Store(true)
	return app.RunStages(ctx, stages)
}
