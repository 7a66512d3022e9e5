package sink_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/sink"
)

// engine is a ClickHouse engine the tests run on: the 18.16 server started by
// scripts/clickhouse.sh, or chDB (26.7) in this process.
type engine struct {
	name string
	// config returns a sink config for a fresh database, dropped at cleanup.
	config func(t *testing.T) sink.Config
	// rows runs a query in cfg's database and returns its rows, typed as queryRows does.
	rows func(t *testing.T, cfg sink.Config, q string) [][]any
}

// engines returns the engines to run a test on, each of which skips (or, when the
// environment requires it, fails) when its server or library is missing.
func engines() []engine {
	return []engine{
		{
			name:   "on the ClickHouse 18.16 server",
			config: func(t *testing.T) sink.Config { return testConfig(t, clickhouseAddr(t)) },
			rows: func(t *testing.T, cfg sink.Config, q string) [][]any {
				return queryRows(t, openCH(t, cfg.Addr, cfg.Database), q)
			},
		},
		{
			name:   "on embedded chDB 26.7",
			config: embeddedConfig,
			rows: func(t *testing.T, cfg sink.Config, q string) [][]any {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				rows, err := sink.QueryEmbedded(ctx, cfg, q)
				require.NoError(t, err, q)
				return rows
			},
		},
	}
}

// chDB keeps one data directory per process: every embedded test shares this one, each
// in a database of its own.
var (
	embeddedOnce sync.Once
	embeddedDir  string
)

// embeddedConfig returns a sink config for a fresh database in the process's chDB
// engine, dropped at cleanup. It skips when chDB is not in the asset cache, and fails
// then under STUDIO_REQUIRE_ASSETS=1 (make test fetches it).
func embeddedConfig(t *testing.T) sink.Config {
	t.Helper()
	lib := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ChDB.Path))
	if _, err := os.Stat(lib); err != nil {
		msg := "chDB is not in the asset cache (run `studio fetch analytics`): " + err.Error()
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	embeddedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sink-chdb-")
		if err != nil {
			panic(err)
		}
		embeddedDir = dir
	})
	cfg := testConfig(t, "")
	cfg.Addr, cfg.EmbeddedDir, cfg.ChDBLibrary = "", embeddedDir, lib
	require.NoError(t, cfg.Validate())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		root := cfg
		root.Database = ""
		if err := sink.Exec(ctx, root, "DROP DATABASE IF EXISTS "+cfg.Database); err != nil {
			t.Logf("drop test database %s: %v", cfg.Database, err)
		}
	})
	return cfg
}

func TestMigrationsOnEveryEngine(t *testing.T) {
	all, err := sink.Migrations()
	require.NoError(t, err)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			applied, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			version := e.rows(t, cfg, "SELECT version()")[0][0].(string)
			var want []string
			for _, m := range all {
				if m.RunsOn(version) {
					want = append(want, m.Name)
				}
			}
			require.Equal(t, want, applied, "ClickHouse %s", version)
			again, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			require.Empty(t, again)

			// The analyst storage (0003) where the engine has it: types, codecs, TTLs.
			modern := all[2].RunsOn(version)
			lowCard := e.rows(t, cfg, "SELECT type FROM system.columns WHERE database = currentDatabase() AND table = 'jobs' AND name = 'model'")
			ttl := e.rows(t, cfg, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'http_requests'")
			if modern {
				require.Equal(t, [][]any{{"LowCardinality(String)"}}, lowCard)
				require.Contains(t, ttl[0][0], "TTL event_time + toIntervalDay(90)")
			} else {
				require.Equal(t, [][]any{{"String"}}, lowCard)
				require.NotContains(t, ttl[0][0], "TTL")
			}
		})
	}
}
