package sink_test

import (
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     sink.Config
		wantErr string
	}{
		{"an empty address says how to set one", sink.Config{}, "STUDIO_CLICKHOUSE_ADDR"},
		{"an address without a port is refused", sink.Config{Addr: "clickhouse"}, "has no port"},
		{"a database name that is not an identifier is refused", sink.Config{Addr: "h:9000", Database: "a-b"}, "database name"},
		{"a batch over a million rows is refused", sink.Config{Addr: "h:9000", BatchRows: 2_000_000}, "batch rows"},
		{"a flush interval under 10ms is refused", sink.Config{Addr: "h:9000", FlushInterval: time.Millisecond}, "too short"},
		{"an ack wait shorter than two flush intervals is refused", sink.Config{Addr: "h:9000", FlushInterval: 10 * time.Second, AckWait: 5 * time.Second}, "ack wait"},
		{"defaults fill the rest", sink.Config{Addr: "h1:9000, h2:9000"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, sink.DefaultDatabase, tt.cfg.Database)
			require.Equal(t, sink.DefaultBatchRows, tt.cfg.BatchRows)
			require.Equal(t, sink.DefaultFlushInterval, tt.cfg.FlushInterval)
			require.NotEmpty(t, tt.cfg.Worker)
		})
	}
}

func TestConfigFlagsReadTheEnvironment(t *testing.T) {
	t.Setenv("STUDIO_CLICKHOUSE_ADDR", "ch:9000")
	t.Setenv("STUDIO_CLICKHOUSE_DATABASE", "analytics")
	t.Setenv("STUDIO_CLICKHOUSE_USER", "sink")
	t.Setenv("STUDIO_CLICKHOUSE_PASSWORD", "secret")
	t.Setenv("STUDIO_SINK_BATCH_ROWS", "2500")
	t.Setenv("STUDIO_SINK_FLUSH_INTERVAL", "250ms")
	var cfg sink.Config
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--clickhouse-user", "override"}))
	require.Equal(t, "ch:9000", cfg.Addr)
	require.Equal(t, "analytics", cfg.Database)
	require.Equal(t, "override", cfg.User, "a flag wins over the environment")
	require.Equal(t, "secret", cfg.Password)
	require.Equal(t, 2500, cfg.BatchRows)
	require.Equal(t, 250*time.Millisecond, cfg.FlushInterval)
	require.True(t, cfg.Migrate)
	require.True(t, cfg.Enabled())
	require.NoError(t, cfg.Validate())
}

func TestSplitStatements(t *testing.T) {
	stmts, err := sink.SplitStatements("-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Memory;\n\n" +
		"SELECT 'it''s -- not a comment'; -- trailing\nSELECT 2\n")
	require.NoError(t, err)
	require.Equal(t, []string{
		"CREATE TABLE a (x String DEFAULT ';') ENGINE = Memory",
		"SELECT 'it''s -- not a comment'",
		"SELECT 2",
	}, stmts)
	_, err = sink.SplitStatements("SELECT 'open")
	require.ErrorContains(t, err, "unterminated")
}

func TestMigrationsAreNumberedFromOne(t *testing.T) {
	t.Run("a migration without a requires line runs everywhere, one with it from that version on", func(t *testing.T) {
		ms, err := sink.Migrations()
		require.NoError(t, err)
		var gated *sink.Migration
		for i := range ms {
			if ms[i].Requires != [2]int{} {
				gated = &ms[i]
			} else {
				require.True(t, ms[i].RunsOn("18.16.1"), ms[i].Name)
			}
		}
		require.NotNil(t, gated, "0003 is version-gated")
		require.Equal(t, [2]int{21, 8}, gated.Requires)
		for v, want := range map[string]bool{"18.16.1": false, "21.3.20.1": false, "21.8.1": true, "22.1.1": true, "26.7.3.1": true} {
			require.Equal(t, want, gated.RunsOn(v), v)
		}
	})

	ms, err := sink.Migrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	for i, m := range ms {
		require.Equal(t, i+1, m.Version, m.Name)
		require.NotEmpty(t, m.Statements, m.Name)
		require.Len(t, m.Checksum, 64)
		for _, s := range m.Statements {
			require.NotContains(t, s, "--", "comments are stripped")
			if !m.RunsOn("18.16.1") {
				continue // a version-gated migration may use what 18.16 lacks
			}
			// 18.16 knows none of these; production runs a current server, but the
			// schema must run on both.
			for _, bad := range []string{"DateTime64", "LowCardinality", "Map(", "JSON", " TTL ", "IF NOT EXISTS ADD"} {
				require.NotContains(t, s, bad, "%s uses %s, which ClickHouse 18.16 rejects", m.Name, bad)
			}
		}
	}
}

func TestCookbookQueriesHaveTitles(t *testing.T) {
	qs, err := sink.Cookbook()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(qs), 6)
	for _, q := range qs {
		require.NotEmpty(t, q.Title, q.Name)
		require.False(t, strings.HasSuffix(q.SQL, ";"), "%s: clickhouse-go sends one statement without a semicolon", q.Name)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestDecodeClassifiesMessages(t *testing.T) {
	now := time.Now().UTC()
	run := schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: "j1", Tenant: "acme", Stage: schemas.StageInference, Attempt: 1, Outcome: "ok", StartedAt: now, DurationMS: 12}
	with := func(f func(*schemas.StageRun)) []byte {
		r := run
		f(&r)
		return mustJSON(t, r)
	}
	http := schemas.HTTPRequest{Schema: schemas.SchemaHTTPRequest, ID: "r1", Time: now, Method: "GET", Route: "GET /v1/jobs/{id}", Status: 200, SampleRate: 0.5}
	result := schemas.ResultEvent{Schema: schemas.SchemaJobResult, JobID: "j1", Tenant: "acme", Status: schemas.StatusSucceeded, SubmittedAt: now, FinishedAt: now}
	running := result
	running.Status = schemas.StatusRunning
	erasure := schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "e1", Tenant: "acme", User: "u1", RequestedAt: now}
	noUser := erasure
	noUser.User = ""
	fb := schemas.Feedback{Schema: schemas.SchemaFeedback, ID: "f1", JobID: "j1", Tenant: "acme", User: "u1", Rating: 1, Time: now}
	zero := fb
	zero.Rating = 0
	audit := schemas.AuditEvent{Schema: schemas.SchemaAudit, ID: "a1", Time: now, Actor: "u1", Tenant: "acme", Action: "job-submit", Result: "allowed"}
	dotted := audit
	dotted.Action = "job.submit"

	tests := []struct {
		name       string
		stream     string
		data       []byte
		wantTables []string
		wantErr    string
	}{
		{"a stage run becomes a stage_runs row", schemas.StreamTelemetry, mustJSON(t, run), []string{"stage_runs"}, ""},
		{"an HTTP request becomes an http_requests row", schemas.StreamTelemetry, mustJSON(t, http), []string{"http_requests"}, ""},
		{"a result becomes a jobs row", schemas.StreamResults, mustJSON(t, result), []string{"jobs"}, ""},
		{"an erasure request is kept in audit_log and erasures", schemas.StreamAudit, mustJSON(t, erasure), []string{"audit_log", "erasures"}, ""},
		{"feedback becomes a feedback row", schemas.StreamFeedback, mustJSON(t, fb), []string{"feedback"}, ""},
		{"an audit event becomes an audit_log row", schemas.StreamAudit, mustJSON(t, audit), []string{"audit_log"}, ""},
		{"bytes that are not JSON are malformed", schemas.StreamTelemetry, []byte("\x00garbage"), nil, "not a JSON object"},
		{"an unknown schema is malformed and names what the stream carries", schemas.StreamTelemetry, []byte(`{"schema":"studio.telemetry.stage_run/v9"}`), nil, `schema "studio.telemetry.stage_run/v9"`},
		{"a result on the telemetry stream is malformed", schemas.StreamTelemetry, mustJSON(t, result), nil, "the sink reads"},
		{"a stage run without a job id is malformed", schemas.StreamTelemetry, with(func(r *schemas.StageRun) { r.JobID = "" }), nil, "missing job_id"},
		{"a start time before 1970 does not fit DateTime", schemas.StreamTelemetry, with(func(r *schemas.StageRun) { r.StartedAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }), nil, "outside 1970..2106"},
		{"a negative attempt is malformed", schemas.StreamTelemetry, with(func(r *schemas.StageRun) { r.Attempt = -1 }), nil, "attempt -1 is out of range"},
		{"a wrongly typed field is malformed", schemas.StreamTelemetry, []byte(`{"schema":"studio.telemetry.stage_run/v1","job_id":7}`), nil, "cannot unmarshal"},
		{"a sample rate of 0 is malformed", schemas.StreamTelemetry, mustJSON(t, schemas.HTTPRequest{Schema: schemas.SchemaHTTPRequest, ID: "r", Time: now, Route: "x", Status: 200}), nil, "sample_rate"},
		{"a result of a running job is malformed", schemas.StreamResults, mustJSON(t, running), nil, "not final"},
		{"an erasure without a user is malformed", schemas.StreamAudit, mustJSON(t, noUser), nil, "missing user"},
		{"an audit action with a dot is malformed", schemas.StreamAudit, mustJSON(t, dotted), nil, "action"},
		{"a rating of 0 is malformed", schemas.StreamFeedback, mustJSON(t, zero), nil, "want +1 or -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables, err := sink.Decode(tt.stream, "studio.test", tt.data)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				require.True(t, errors.Is(err, sink.ErrMalformed))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantTables, tables)
		})
	}
}
