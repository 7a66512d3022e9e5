package app

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/sink"
)

// Analytics engines of `studio up` (--analytics).
const (
	// AnalyticsAuto (the flag's default) writes to the ClickHouse server of
	// --clickhouse-addr when one is set, else to the embedded engine; the embedded engine
	// is skipped with a warning when its library cannot be fetched.
	AnalyticsAuto = "auto"
	// AnalyticsEmbedded writes to chDB, the in-process ClickHouse, under <data-dir>/analytics.
	AnalyticsEmbedded = "embedded"
	// AnalyticsClickHouse writes to the server of --clickhouse-addr.
	AnalyticsClickHouse = "clickhouse"
	// AnalyticsOff runs no sink; events wait in their streams.
	AnalyticsOff = "off"
)

// checkAnalytics reports a --analytics value that is not one of the engines.
func checkAnalytics(mode string) error {
	switch mode {
	case "", AnalyticsAuto, AnalyticsEmbedded, AnalyticsClickHouse, AnalyticsOff:
		return nil
	}
	return fmt.Errorf("--analytics %q: use auto, embedded, clickhouse or off", mode)
}

// upAnalytics returns the sink configuration `studio up` runs with, for cfg.Analytics.
// The zero value of Analytics (embedders, tests) keeps the plain rule: a sink exactly
// when --clickhouse-addr is set. For the embedded engine it fetches (first run: 178 MB)
// and verifies chDB through the asset cache, like the models.
func upAnalytics(ctx context.Context, cfg *Config, log logrus.FieldLogger) (sink.Config, error) {
	sc := cfg.Sink
	sc.EmbeddedDir, sc.ChDBLibrary = "", ""
	hasAddr := strings.TrimSpace(sc.Addr) != ""
	mode := cfg.Analytics
	switch {
	case mode == "" && hasAddr, mode == AnalyticsAuto && hasAddr, mode == AnalyticsClickHouse && hasAddr:
		return sc, nil
	case mode == "", mode == AnalyticsOff:
		sc.Addr = ""
		return sc, nil
	case mode == AnalyticsClickHouse:
		return sc, fmt.Errorf("--analytics clickhouse needs --clickhouse-addr (or STUDIO_CLICKHOUSE_ADDR)")
	case mode == AnalyticsEmbedded && hasAddr:
		return sc, fmt.Errorf("--analytics embedded writes to the in-process engine: leave --clickhouse-addr empty, or use --analytics clickhouse")
	}
	// Embedded, asked for or by default.
	fail := func(err error) (sink.Config, error) {
		if mode == AnalyticsEmbedded {
			return sc, err
		}
		log.WithError(err).Warn("embedded analytics off; use --analytics off to silence this, or --clickhouse-addr for a server")
		sc.Addr = ""
		return sc, nil
	}
	if cfg.DataDir == "" {
		return fail(fmt.Errorf("the embedded analytics engine keeps its tables under --data-dir, which is empty"))
	}
	lib, err := (&assets.Cache{Dir: cfg.CacheDir, Log: log}).Ensure(ctx, assets.ChDB)
	if err != nil {
		return fail(fmt.Errorf("fetch the embedded analytics engine (chDB): %w", err))
	}
	sc.Addr, sc.EmbeddedDir, sc.ChDBLibrary = "", filepath.Join(cfg.DataDir, "analytics"), lib
	// The process owns its embedded store: nobody else could run `studio migrate` on it.
	sc.Migrate = true
	return sc, nil
}
