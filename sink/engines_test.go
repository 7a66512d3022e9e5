package sink_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
			config: func(t *testing.T) sink.Config { return embeddedConfig(t) },
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
func embeddedConfig(t testing.TB) sink.Config {
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

// TestSortingKeysRebuildKeepsRowsAndRollups migrates to 0003, writes jobs, then
// migrates on: 0004 rebuilds the tables around their new sorting keys, and the rows
// written before, the rollups of them, and the materialized views for later rows all
// survive it.
func TestSortingKeysRebuildKeepsRowsAndRollups(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := sink.MigrateTo(ctx, cfg, 3)
			require.NoError(t, err)
			now := time.Now().UTC().Truncate(time.Second)
			cols := []string{"job_id", "tenant", "user_id", "task", "model", "model_version", "status", "submitted_at"}
			require.NoError(t, sink.Insert(ctx, cfg, "jobs", cols, [][]any{
				{"before-1", "acme", "ann", "upscale", "realesrgan", "general-x4v3", "succeeded", now},
				{"before-2", "beta", "bob", "upscale", "realesrgan", "general-x4v3", "failed", now},
			}))
			applied, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			require.Contains(t, applied, "0004_sorting_keys.sql")

			for table, key := range map[string]string{
				"jobs":          "(toDate(submitted_at), tenant, job_id)",
				"stage_runs":    "(toDate(started_at), tenant, run_id)",
				"http_requests": "(toDate(event_time), tenant, id)",
				"audit_log":     "(toDate(event_time), tenant, id)",
				"feedback":      "(toDate(event_time), tenant, id)",
			} {
				full := e.rows(t, cfg, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = '"+table+"'")
				require.Contains(t, full[0][0], "ReplacingMergeTree(inserted_at)", table)
				require.Contains(t, full[0][0], "ORDER BY "+key, table)
			}
			require.NoError(t, sink.Insert(ctx, cfg, "jobs", cols, [][]any{
				{"after-1", "acme", "ann", "upscale", "realesrgan", "general-x4v3", "succeeded", now},
			}))
			require.Equal(t, "[[3 2]]", fmt.Sprint(e.rows(t, cfg, "SELECT count(), uniqExact(tenant) FROM jobs FINAL")))
			require.Equal(t, "[[3]]", fmt.Sprint(e.rows(t, cfg, "SELECT sum(jobs) FROM jobs_daily")),
				"the daily rollup holds the jobs from before the rebuild and the one after it")
			require.Equal(t, "[[3]]", fmt.Sprint(e.rows(t, cfg, "SELECT sum(requests) FROM jobs_hourly")))
			for _, leftover := range []string{"jobs_sorted", "jobs_unsorted"} {
				require.Equal(t, "[[0]]", fmt.Sprint(e.rows(t, cfg, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = '"+leftover+"'")))
			}
		})
	}
}

// TestHeaviestCookbookQueriesUseTheSortingKey reads the plans of the two heaviest
// cookbook queries on the current engine (canary_vs_stable: jobs and feedback with
// FINAL and a JOIN; slowest_tenants: every job of the window): each read of jobs must
// filter on the primary key's leading day column, so it skips the days outside the
// window. Run with -v to print the plans (the README's cookbook quotes them).
func TestHeaviestCookbookQueriesUseTheSortingKey(t *testing.T) {
	cfg := embeddedConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := sink.Migrate(ctx, cfg)
	require.NoError(t, err)
	// 60 days of jobs and ratings (three monthly partitions), so that the plans have
	// partitions and granules to skip.
	now := time.Now().UTC().Truncate(time.Second)
	var jobs, ratings [][]any
	for d := range 60 {
		at := now.Add(-time.Duration(d) * 24 * time.Hour)
		id := fmt.Sprintf("job-%02d", d)
		jobs = append(jobs, []any{id, "acme", "ann", "upscale", "realesrgan", "general-x4v3", "succeeded", at, at, at.Add(time.Second), 1000.0})
		ratings = append(ratings, []any{"fb-" + id, id, "acme", "ann", int8(1), "realesrgan", "general-x4v3", at})
	}
	require.NoError(t, sink.Insert(ctx, cfg, "jobs",
		[]string{"job_id", "tenant", "user_id", "task", "model", "model_version", "status", "submitted_at", "started_at", "finished_at", "total_ms"}, jobs))
	require.NoError(t, sink.Insert(ctx, cfg, "feedback",
		[]string{"id", "job_id", "tenant", "user_id", "rating", "model", "model_version", "event_time"}, ratings))
	book, err := sink.Cookbook()
	require.NoError(t, err)
	for _, name := range []string{"canary_vs_stable", "slowest_tenants"} {
		var q string
		for _, c := range book {
			if c.Name == name {
				q = c.SQL
			}
		}
		require.NotEmpty(t, q, name)
		res, err := sink.SQL(ctx, cfg, "EXPLAIN indexes = 1 "+q)
		require.NoError(t, err, name)
		var plan strings.Builder
		for _, r := range res.Rows {
			plan.WriteString(fmt.Sprint(r[0]) + "\n")
		}
		t.Logf("EXPLAIN indexes = 1 of %s on ClickHouse %s:\n%s", name, res.Engine, plan.String())
		require.Contains(t, plan.String(), "PrimaryKey", name)
		require.Regexp(t, `Condition: \(toDate\(submitted_at\) in \[\d+, \+Inf\)\)[\s│]+Parts: [12]/3`, plan.String(),
			"%s: the read of jobs filters on the key's leading day and skips the older parts", name)
	}
}

// A full default batch of stage-run ids (10,000 of about 40 bytes) is larger than the
// embedded engine's max_query_size; the lookup of stored ids must still answer, or the
// sink would retry that batch forever.
func TestStoredLooksUpAFullBatchOfLongIDs(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			keys := make([]string, sink.DefaultBatchRows)
			for i := range keys {
				keys[i] = fmt.Sprintf("job-%08d-0123456789abcdef:inference:1:ok", i)
			}
			stored := []string{keys[0], keys[5000], keys[len(keys)-1]}
			rows := make([][]any, len(stored))
			for i, k := range stored {
				rows[i] = []any{k, "acme", time.Now().UTC().Truncate(time.Second)}
			}
			require.NoError(t, sink.Insert(ctx, cfg, "stage_runs", []string{"run_id", "tenant", "started_at"}, rows))
			got, err := sink.Stored(ctx, cfg, "stage_runs", "run_id", keys)
			require.NoError(t, err)
			want := map[string]bool{}
			for _, k := range stored {
				want[k] = true
			}
			require.Equal(t, want, got)
		})
	}
}
