package sink_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
)

func TestCheckReadOnlyRefusesAnythingButOneQuery(t *testing.T) {
	for _, tc := range []struct{ name, sql string }{
		{"an empty statement", "  ;  "},
		{"an insert", "INSERT INTO jobs (job_id) VALUES ('x')"},
		{"a second statement after a query", "SELECT 1; DROP TABLE jobs"},
		{"a drop hidden behind a comment", "/* SELECT */ DROP TABLE jobs"},
		{"a second statement behind a quoted semicolon", "SELECT ';'; DROP TABLE jobs"},
		{"an unclosed string", "SELECT 'abc"},
		{"a session change", "SET readonly = 0"},
		{"a query that writes a file", "SELECT * FROM jobs INTO OUTFILE '/tmp/x'"},
		{"a query that lifts its own limits", "SELECT 1 SETTINGS readonly = 0"},
		{"a query with its own output format", "SELECT 1 FORMAT TabSeparated"},
		{"an ALTER", "ALTER TABLE jobs DELETE WHERE 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, sink.CheckReadOnly(tc.sql), sink.ErrNotReadOnly)
		})
	}
	for _, ok := range []string{
		"SELECT 1",
		"select count() from jobs;",
		"-- a comment first\nWITH 1 AS x SELECT x",
		"EXPLAIN SELECT * FROM jobs",
		"SELECT name, value FROM system.settings WHERE name = 'readonly'",
		"SELECT formatDateTime(now(), '%F')",
		"SELECT 'a; DROP TABLE jobs' AS harmless_text",
		"SELECT 1 -- SETTINGS readonly = 0;",
	} {
		require.NoError(t, sink.CheckReadOnly(ok), ok)
	}
}

func TestSQLAnswersReadOnlyQueriesOnEveryEngine(t *testing.T) {
	cookbook, err := sink.Cookbook()
	require.NoError(t, err)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			now := time.Now().UTC().Truncate(time.Second)
			require.NoError(t, sink.Insert(ctx, cfg, "jobs",
				[]string{"job_id", "tenant", "user_id", "task", "model", "model_version", "status", "submitted_at", "total_ms"},
				[][]any{
					{"job-1", "acme", "ann", "upscale", "realesrgan", "general-x4v3", "succeeded", now, 120.5},
					{"job-2", "acme", "bob", "upscale", "realesrgan", "general-x4v3", "failed", now, 80.0},
				}))

			res, err := sink.SQL(ctx, cfg, "SELECT tenant, count() AS jobs, max(submitted_at) AS last FROM jobs GROUP BY tenant")
			require.NoError(t, err)
			require.Equal(t, []string{"tenant", "jobs", "last"}, columnNames(res))
			require.Len(t, res.Rows, 1)
			require.Equal(t, "acme", res.Rows[0][0])
			require.EqualValues(t, 2, res.Rows[0][1])
			require.Equal(t, now.Format("2006-01-02 15:04:05"), res.Rows[0][2])
			require.NotEmpty(t, res.Engine)
			require.False(t, res.Truncated)

			big, err := sink.SQL(ctx, cfg, "SELECT number FROM system.numbers LIMIT 25000")
			require.NoError(t, err)
			require.Len(t, big.Rows, sink.SQLMaxRows)
			require.True(t, big.Truncated, "a result over the row limit says it was cut")

			for _, q := range cookbook {
				res, err := sink.SQL(ctx, cfg, q.SQL)
				require.NoError(t, err, "cookbook query %s", q.Name)
				require.NotEmpty(t, res.Columns, q.Name)
			}

			// The engine itself refuses what the statement check cannot see.
			for _, q := range []string{
				"SELECT * FROM file('/etc/passwd', 'LineAsString')",
				"SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
			} {
				_, err := sink.SQL(ctx, cfg, q)
				require.Error(t, err, "%s must be refused", q)
				require.NotErrorIs(t, err, sink.ErrNotReadOnly)
			}
			_, err = sink.SQL(ctx, cfg, "SELECT length(groupArray(repeat('x', 4096))) FROM system.numbers LIMIT 1000000")
			require.ErrorIs(t, err, schemas.ErrBadQuery, "a query over the memory bound fails instead of taking the process down")
			_, err = sink.SQL(ctx, cfg, "SELECT * FROM no_such_table")
			require.ErrorContains(t, err, "no_such_table")

			// Nothing was changed by the refused statements.
			rows := e.rows(t, cfg, "SELECT count() FROM jobs")
			require.EqualValues(t, 2, rows[0][0])
		})
	}
	t.Run("without an analytics store", func(t *testing.T) {
		_, err := sink.SQL(context.Background(), sink.Config{}, "SELECT 1")
		require.True(t, errors.Is(err, schemas.ErrAnalyticsOff), err)
	})
}

func columnNames(r *schemas.SQLResult) []string {
	var out []string
	for _, c := range r.Columns {
		out = append(out, c.Name)
	}
	return out
}
