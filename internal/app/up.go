package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/metrics"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

// Up runs everything in one process: NATS (embedded unless --nats-url), every stage and
// the HTTP API. started is called with the URL to open once the API listens. Up returns
// after ctx is cancelled and everything has drained.
func Up(ctx context.Context, cfg *Config, log logrus.FieldLogger, started func(url string)) error {
	return UpWithToken(ctx, cfg, log, func(url, _ string) {
		if started != nil {
			started(url)
		}
	})
}

// UpWithToken is Up that also hands started the development access token: with --auth
// on, `studio up` makes sure the development user (tenant and user "local", every scope)
// exists and issues a token for it, for the banner. devToken is empty with --auth off.
func UpWithToken(ctx context.Context, cfg *Config, log logrus.FieldLogger, started func(url, devToken string)) error {
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
	// The sink and the dashboard's business panel use the engine --analytics selects.
	resolved := *cfg
	if resolved.Sink, err = upAnalytics(ctx, cfg, log); err != nil {
		return err
	}
	cfg = &resolved
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
	for _, st := range processors.StageNames() {
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
	var devToken string
	if sec := svc.Security(); sec != nil && parts["ingest"] {
		if devToken, err = devKey(ctx, sec); err != nil {
			return err
		}
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
			if err := sink.Run(stageCtx, sc, streams.Engine{JS: bus.JS}); err != nil && stageCtx.Err() == nil {
				log.WithError(err).Error("ClickHouse sink stopped; events wait in their streams until it runs again")
			}
		}()
	} else {
		log.Info("analytics sink off: use --analytics embedded or --clickhouse-addr to write analytics (events wait in their streams meanwhile)")
	}
	// This process polls every stage's queues, not only its own: it holds the API, and a
	// stage whose workers are all down still needs its depth reported.
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.PollQueues(stageCtx, metrics.DefaultQueueInterval, QueueSource(bus, nil, cat), log)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.PollStreams(stageCtx, metrics.DefaultQueueInterval, StreamSource(bus), log)
	}()

	if !parts["ingest"] {
		// Without the API the HTTP port still serves /metrics and health.
		httpErr := ServeHTTP(ctx, cfg.HTTPListen, m.AdminHandler(func(ctx context.Context) error { return BusReady(ctx, bus) }), func(a net.Addr) {
			log.WithField("addr", a.String()).Info("studio is up without ingest; /metrics and /health on this address")
			if started != nil {
				started("", "")
			}
		})
		stopStages()
		wg.Wait()
		if httpErr != nil && !errors.Is(httpErr, context.Canceled) {
			return fmt.Errorf("http: %w", httpErr)
		}
		return stageErr
	}
	httpErr := ServeIngest(ctx, cfg, bus, svc, m, log, m.Serve(svc.Handler()), func(a net.Addr) {
		url := cfg.PublicURL
		if url == "" {
			url = "http://" + displayAddr(a)
		}
		// The development key goes to the terminal banner (started) only: a log line
		// is shipped and kept, so it carries no secret, only that a key was issued.
		log.WithFields(logrus.Fields{"url": url, "dev_key_issued": devToken != ""}).Info("studio is up")
		if started != nil {
			started(url, devToken)
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

// devKeyName names the API key `studio up` issues for the development user.
const devKeyName = "studio-up"

// devKey makes sure the development user exists and issues it a fresh API key (every
// scope, no expiry), revoking the one an earlier start printed. An API key rather than a
// 15-minute access token, so the URL printed at start keeps working while studio runs.
func devKey(ctx context.Context, sec *ingest.Security) (string, error) {
	if _, err := auth.DevBootstrap(ctx, sec.Users, sec.Issuer); err != nil {
		return "", err
	}
	old, err := sec.Keys.List(ctx, auth.DevTenant)
	if err != nil {
		return "", err
	}
	for _, k := range old {
		if k.Name == devKeyName && k.RevokedAt.IsZero() {
			if err := sec.Keys.Revoke(ctx, auth.DevTenant, k.ID); err != nil {
				return "", err
			}
		}
	}
	key, token, err := auth.NewAPIKey(auth.DevTenant, auth.DevUser, devKeyName, schemas.TierPremium,
		[]auth.Scope{auth.ScopeJobsWrite, auth.ScopeJobsRead, auth.ScopeKeysManage}, time.Time{}, 0, time.Now())
	if err != nil {
		return "", err
	}
	if err := sec.Keys.Create(ctx, key); err != nil {
		return "", err
	}
	return token, nil
}
