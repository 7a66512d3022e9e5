package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// Up runs everything in one process: NATS (embedded unless --nats-url), every stage and
// the HTTP API. started is called with the URL to open once the API listens. Up returns
// after ctx is cancelled and everything has drained.
func Up(ctx context.Context, cfg *Config, log logrus.FieldLogger, started func(url string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m, stopTracing, err := NewMetrics(ctx, cfg, "up", log)
	if err != nil {
		return err
	}
	defer stopTracing()
	bus, err := Connect(ctx, cfg, "studio-up", log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	blobs = m.InstrumentBlobs(blobs, BlobBackend(cfg))
	parts, _ := cfg.UpStages()
	log.Info("checking models, the ONNX Runtime library and the web assets (first run downloads them)")
	if err := (&assets.Cache{Dir: cfg.CacheDir, Log: log}).EnsureAll(ctx, assets.Web...); err != nil {
		return err
	}
	cat, err := Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	var loaded func() []string
	deps := Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log, Loaded: &loaded, Metrics: m}
	if parts[string(schemas.StageInference)] {
		if deps.Backend, err = Backend(ctx, cfg, log); err != nil {
			return err
		}
	}
	var stages []*Stage
	for _, st := range schemas.PipelineStages {
		if !parts[string(st)] {
			continue
		}
		s, err := NewStage(ctx, cfg, st, deps)
		if err != nil {
			return err
		}
		stages = append(stages, s...)
	}
	svc, err := NewIngest(ctx, cfg, deps, nil)
	if err != nil {
		return err
	}

	stageCtx, stopStages := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStages()
	var wg sync.WaitGroup
	var stageErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		stageErr = RunStages(stageCtx, stages)
	}()
	if cfg.Sink.Enabled() {
		sc := cfg.Sink
		sc.Log = log.WithField("stage", "sink")
		sc.Worker = cfg.Worker
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sink.Run(stageCtx, sc, streams.BatchOpener{JS: bus.JS}); err != nil && stageCtx.Err() == nil {
				log.WithError(err).Error("ClickHouse sink stopped; events wait in their streams until it runs again")
			}
		}()
	} else {
		log.Info("analytics sink off: set --clickhouse-addr to write to ClickHouse (events wait in their streams meanwhile)")
	}
	// This process polls every stage's queues, not only its own: it holds the API, and a
	// stage whose workers are all down still needs its depth reported.
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.PollQueues(stageCtx, metrics.DefaultQueueInterval, QueueSource(bus, schemas.PipelineStages, cat), log)
	}()

	if !parts["ingest"] {
		// Without the API the HTTP port still serves /metrics and health.
		httpErr := ServeHTTP(ctx, cfg.HTTPListen, m.AdminHandler(func(ctx context.Context) error { return BusReady(ctx, bus) }), func(a net.Addr) {
			log.WithField("addr", a.String()).Info("studio is up without ingest; /metrics and /health on this address")
			if started != nil {
				started("")
			}
		})
		stopStages()
		wg.Wait()
		if httpErr != nil && !errors.Is(httpErr, context.Canceled) {
			return fmt.Errorf("http: %w", httpErr)
		}
		return stageErr
	}
	httpErr := ServeIngest(ctx, cfg, bus, svc, m.Serve(svc.Handler()), func(a net.Addr) {
		url := cfg.PublicURL
		if url == "" {
			url = "http://" + displayAddr(a)
		}
		log.WithField("url", url).Info("studio is up")
		if started != nil {
			started(url)
		}
	})
	// Intake has stopped; now let the stages finish what is in flight.
	stopStages()
	wg.Wait()
	if httpErr != nil && !errors.Is(httpErr, context.Canceled) {
		return fmt.Errorf("http: %w", httpErr)
	}
	return stageErr
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "0.0.0.0:") || strings.HasPrefix(s, "[::]:") {
		return "localhost:" + s[strings.LastIndexByte(s, ':')+1:]
	}
	return s
}
