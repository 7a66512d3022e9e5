package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// Up runs everything in one process: NATS (embedded unless --nats-url), every stage and
// the HTTP API. started is called with the URL to open once the API listens. Up returns
// after ctx is cancelled and everything has drained.
func Up(ctx context.Context, cfg *Config, log logrus.FieldLogger, started func(url string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	bus, err := Connect(ctx, cfg, "studio-up", log)
	if err != nil {
		return err
	}
	defer bus.Close()
	blobs, err := OpenBlobs(ctx, cfg, bus, log)
	if err != nil {
		return err
	}
	parts, _ := cfg.UpStages()
	log.Info("checking models and the ONNX Runtime library (first run downloads them)")
	cat, err := Catalog(ctx, cfg, log)
	if err != nil {
		return err
	}
	var loaded func() []string
	deps := Deps{Bus: bus, Blobs: blobs, Catalog: cat, Log: log, Loaded: &loaded}
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

	if !parts["ingest"] {
		log.Info("studio is up without ingest")
		if started != nil {
			started("")
		}
		<-ctx.Done()
		stopStages()
		wg.Wait()
		return stageErr
	}
	httpErr := ServeHTTP(ctx, cfg.HTTPListen, svc.Handler(), func(a net.Addr) {
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
