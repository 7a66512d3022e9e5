package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/creativeai-studio/studio/internal/auth"
)

// testClickHouse runs `studio migrate` twice (the second run has nothing to apply) and
// `studio sink` against the cluster, then finds the job and the audit record of the
// user's creation in ClickHouse. It skips without a server
// (STUDIO_TEST_CLICKHOUSE_ADDR), unless STUDIO_REQUIRE_CLICKHOUSE=1.
func (c *cluster) testClickHouse(t *testing.T, jobID, userToken string) {
	addr := os.Getenv("STUDIO_TEST_CLICKHOUSE_ADDR")
	if addr == "" {
		const msg = "STUDIO_TEST_CLICKHOUSE_ADDR is not set: run `eval \"$(scripts/clickhouse.sh start)\"` or `make test`"
		if os.Getenv("STUDIO_REQUIRE_CLICKHOUSE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	db := fmt.Sprintf("clitest_%d", time.Now().UnixNano()%1e9)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Username: "default"}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("drop test database %s: %v", db, err)
		}
		conn.Close()
	})
	env := append(slices.Clone(c.env), "STUDIO_CLICKHOUSE_ADDR="+addr, "STUDIO_CLICKHOUSE_DATABASE="+db)

	expect(t, studio(t, env, "migrate"), 0, "applied 0001_tables.sql", "applied 0002_rollups.sql")
	expect(t, studio(t, env, "migrate"), 0, "schema is up to date")

	sink := startDaemon(t, env, "sink", "--sink-flush-interval", "200ms", "--worker-id", "cli-sink")
	ctx := context.Background()
	waitFor(t, sink, time.Minute, "the cancelled job in ClickHouse", func() bool {
		var status string
		err := conn.QueryRow(ctx, "SELECT status FROM "+db+".jobs FINAL WHERE job_id = ?", jobID).Scan(&status)
		return err == nil && status == "cancelled"
	})
	waitFor(t, sink, time.Minute, "the audit record of alice's creation in ClickHouse", func() bool {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".audit_log WHERE action = ? AND resource = 'user/alice' AND tenant = 'acme'", auth.ActionUserCreate).Scan(&n)
		return err == nil && n > 0
	})
	if err := sink.stop(40 * time.Second); err != nil {
		t.Fatalf("studio sink: %v", err)
	}

	// studio sql: an ingest that serves these analytics answers operators' queries.
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env = append(env, "STUDIO_SERVER="+api)
	// acme's admins operate this deployment: the analytics span every tenant.
	ing := startDaemon(t, env, "ingest", "--http", strings.TrimPrefix(api, "http://"), "--worker-id", "cli-sql-ingest", "--operator-tenant", "acme")
	waitFor(t, ing, time.Minute, "studio ingest with analytics serving", func() bool { return httpOK(api + "/health/live") })
	r := studio(t, env, "users", "token", "--tenant", "acme", "--user", "root")
	expect(t, r, 0, "access_token")
	var pair auth.TokenPair
	if err := json.Unmarshal([]byte(r.stdout), &pair); err != nil {
		t.Fatal(err)
	}
	admin := append(slices.Clone(env), "STUDIO_TOKEN="+pair.AccessToken)
	expect(t, studio(t, admin, "sql", "SELECT job_id, status FROM jobs FINAL WHERE job_id = '"+jobID+"'"), 0, "job_id", jobID, "cancelled", "1 rows in")
	expect(t, studio(t, admin, "sql", "--format", "csv", "SELECT status FROM jobs FINAL WHERE job_id = '"+jobID+"'"), 0, "status\ncancelled\n")
	expect(t, studio(t, admin, "sql", "--list"), 0, "NAME", "p95_by_stage")
	expect(t, studio(t, admin, "sql", "--cookbook", "p95_by_stage", "--format", "json"), 0, `"columns"`, `"stage"`)
	r = studio(t, admin, "sql", "DROP TABLE jobs")
	expect(t, r, 1)
	if !strings.Contains(r.stderr, "400") || !strings.Contains(r.stderr, "read-only") {
		t.Fatalf("a DROP must be refused as not read-only\n%s", r)
	}
	r = studio(t, admin, "sql", "--cookbook", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `no cookbook query "nope"`) {
		t.Fatalf("an unknown cookbook query must be named\n%s", r)
	}
	r = studio(t, append(slices.Clone(env), "STUDIO_TOKEN="+userToken), "sql", "SELECT 1")
	if r.code != 1 || !strings.Contains(r.stderr, "403") {
		t.Fatalf("a user without the admin scope must get 403\n%s", r)
	}
}
