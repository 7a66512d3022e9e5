package sink_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// child is a sink running in another process.
type child struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startChild(t *testing.T, natsURL string, cfg sink.Config, batch, crashAfter int) *child {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envChild+"=1", envChildNATS+"="+natsURL, envChildDB+"="+cfg.Database,
		fmt.Sprintf("%s=%d", envChildBatch, batch), fmt.Sprintf("%s=%d", envChildCrashAt, crashAfter))
	c := &child{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	require.NoError(t, cmd.Start())
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

// wait returns how the child ended.
func (c *child) wait(t *testing.T, timeout time.Duration) syscall.WaitStatus {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		t.Fatalf("sink child did not end within %s; its log:\n%s", timeout, c.stderr)
	}
	return c.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// consumerBacklog sums pending and unacknowledged messages of the sink's consumers.
func consumerBacklog(t *testing.T, srv *streamstest.Server) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	total := 0
	for stream, durable := range map[string]string{
		schemas.StreamTelemetry: "sink-telemetry", schemas.StreamResults: "sink-results",
		schemas.StreamAudit: "sink-audit", schemas.StreamFeedback: "sink-feedback",
	} {
		c, err := srv.JS.Consumer(ctx, stream, durable)
		require.NoError(t, err)
		info, err := c.Info(ctx)
		require.NoError(t, err)
		total += int(info.NumPending) + info.NumAckPending
	}
	return total
}

// requireExactlyOnce checks every table holds each id once, without FINAL.
func requireExactlyOnce(t *testing.T, conn driver.Conn, want map[string]uint64) {
	t.Helper()
	keys := map[string]string{"jobs": "job_id", "stage_runs": "run_id", "http_requests": "id", "audit_log": "id", "feedback": "id"}
	for table, n := range want {
		require.Equal(t, n, count(t, conn, "SELECT uniqExact("+keys[table]+") FROM "+table), "%s: every event has a row", table)
		require.Equal(t, n, count(t, conn, "SELECT count() FROM "+table), "%s: no event has two rows", table)
	}
}

func (d *dataset) tableCounts() map[string]uint64 {
	return map[string]uint64{
		"jobs": uint64(len(d.jobs)), "stage_runs": uint64(d.stageRuns()), "http_requests": uint64(len(d.http)),
		"audit_log": uint64(len(d.audit)), "feedback": uint64(len(d.feedback)),
	}
}

func TestSinkKilledMidBatchLosesAndDoublesNothing(t *testing.T) {
	addr := clickhouseAddr(t)
	srv := streamstest.Start(t)
	natsURL := srv.Embedded.ClientURL()
	require.NotEmpty(t, natsURL)
	cfg := testConfig(t, addr)
	conn := openCH(t, addr, cfg.Database)

	first := newDataset(time.Now().UTC(), 500, 3)
	publish(t, srv, first.outputs(t)...)

	// 1. Killed between commit and ack: the third telemetry batch is in ClickHouse but
	// its messages are still unacknowledged, so they come back.
	c := startChild(t, natsURL, cfg, 300, 3)
	ws := c.wait(t, 60*time.Second)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child should have killed itself after a commit: %v\n%s", ws, c.stderr)
	committed := count(t, conn, "SELECT count() FROM stage_runs")
	require.Greater(t, committed, uint64(0))
	require.Less(t, committed, uint64(first.stageRuns()))

	// A new sink gets the unacknowledged batch again after AckWait and writes none of
	// it twice.
	s := startSink(t, srv, cfg)
	waitCount(t, conn, 60*time.Second, uint64(first.stageRuns()), "SELECT count() FROM stage_runs")
	streamstest.Eventually(t, 60*time.Second, func() bool { return consumerBacklog(t, srv) == 0 }, "the sink's consumers drain")
	requireExactlyOnce(t, conn, first.tableCounts())
	require.Greater(t, s.Stats().Duplicates, uint64(0), "the batch committed before the crash was redelivered and skipped")
	t.Logf("kill between commit and ack: %d redelivered rows skipped", s.Stats().Duplicates)
	s.stop()
	committed = count(t, conn, "SELECT count() FROM stage_runs")

	// 2. Killed from outside at an arbitrary moment while new events keep arriving.
	second := newDataset(time.Now().UTC(), 500, 4)
	for _, j := range second.jobs {
		j.ev.JobID = "second-" + j.ev.JobID
		for i := range j.runs {
			j.runs[i].JobID = j.ev.JobID
		}
	}
	for i := range second.http {
		second.http[i].ID = "second-" + second.http[i].ID
	}
	for i := range second.audit {
		second.audit[i].ID = "second-" + second.audit[i].ID
	}
	for i := range second.feedback {
		second.feedback[i].ID = "second-" + second.feedback[i].ID
		second.feedback[i].JobID = "second-" + second.feedback[i].JobID
	}
	c = startChild(t, natsURL, cfg, 200, 0)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		outs := second.outputs(t)
		for len(outs) > 0 {
			n := min(len(outs), 300)
			if err := (streams.JSPublisher{JS: srv.JS}).Publish(context.Background(), outs[:n]...); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			outs = outs[n:]
			time.Sleep(10 * time.Millisecond) // a steady stream, so the kill lands mid-flow
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for count(t, conn, "SELECT count() FROM stage_runs") < committed+uint64(second.stageRuns()/3) {
		require.True(t, time.Now().Before(deadline), "the second child wrote nothing; its log:\n%s", c.stderr)
		time.Sleep(5 * time.Millisecond)
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	ws = c.wait(t, 30*time.Second)
	require.True(t, ws.Signaled(), "the child was killed: %v", ws)
	wg.Wait()

	// 3. A new sink picks everything up: the unacknowledged messages are redelivered
	// after AckWait and the ones already stored are recognised.
	s = startSink(t, srv, cfg)
	want := first.tableCounts()
	for table, n := range second.tableCounts() {
		want[table] += n
	}
	waitCount(t, conn, 60*time.Second, want["stage_runs"], "SELECT count() FROM stage_runs")
	streamstest.Eventually(t, 60*time.Second, func() bool { return consumerBacklog(t, srv) == 0 }, "the sink's consumers drain")
	requireExactlyOnce(t, conn, want)
	t.Logf("kill at an arbitrary moment: %d redelivered rows skipped", s.Stats().Duplicates)
}

// privateClickHouse starts a server of its own with scripts/clickhouse.sh, so the
// outage test can stop it without disturbing other tests. It returns its address and
// functions that stop and restart it on the same port and data.
func privateClickHouse(t *testing.T) (addr string, pause, resume func()) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "scripts", "clickhouse.sh"))
	require.NoError(t, err)
	runDir := t.TempDir()
	run := func(arg string) string {
		cmd := exec.Command(script, arg)
		cmd.Env = append(os.Environ(), "STUDIO_CLICKHOUSE_RUN_DIR="+runDir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "clickhouse.sh %s: %s", arg, stderr.String())
		return string(out)
	}
	out := run("start")
	t.Cleanup(func() { run("stop") })
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "export STUDIO_TEST_CLICKHOUSE_ADDR="); ok {
			addr = v
		}
	}
	require.NotEmpty(t, addr, "clickhouse.sh start printed no address: %q", out)
	return addr, func() { run("pause") }, func() { run("resume") }
}

func TestSinkCatchesUpAfterClickHouseOutage(t *testing.T) {
	clickhouseAddr(t) // the server is installed and tests are wanted
	if testing.Short() {
		t.Skip("the outage test restarts a ClickHouse server (about 15 s); skipped with -short")
	}
	addr, pause, resume := privateClickHouse(t)
	srv := streamstest.Start(t)
	cfg := testConfig(t, addr)
	cfg.DialTimeout, cfg.QueryTimeout = time.Second, 5*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := sink.Migrate(ctx, cfg) // so the test can count rows from the start
	require.NoError(t, err)
	conn := openCH(t, addr, cfg.Database)
	s := startSink(t, srv, cfg)

	// Load: stage runs published steadily from start to end of the outage.
	d := newDataset(time.Now().UTC(), 1500, 5)
	var runs []streams.Output
	for _, o := range d.outputs(t) {
		if strings.HasPrefix(o.Subject, "studio.telemetry.") && o.Subject != schemas.SubjectHTTPTelemetry {
			runs = append(runs, o)
		}
	}
	var published sync.WaitGroup
	sent := make(chan int, len(runs))
	release := make(chan struct{})
	published.Add(1)
	go func() {
		defer published.Done()
		gated := false
		for i := 0; i < len(runs); i += 200 {
			if i >= len(runs)/2 && !gated {
				<-release // the second half waits until the outage has begun
				gated = true
			}
			batch := runs[i:min(i+200, len(runs))]
			if err := (streams.JSPublisher{JS: srv.JS}).Publish(context.Background(), batch...); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			sent <- len(batch)
			time.Sleep(50 * time.Millisecond)
		}
	}()

	waitCount := func(min uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for count(t, conn, "SELECT count() FROM stage_runs") < min {
			require.True(t, time.Now().Before(deadline), "rows did not reach %d", min)
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount(1)
	outage := time.Now()
	pause()
	close(release)
	published.Wait()
	// Down long enough for several retries with backoff.
	streamstest.Eventually(t, 30*time.Second, func() bool { return s.Stats().WriteErrors >= 5 }, "the sink keeps retrying while ClickHouse is gone")
	close(sent)
	total := 0
	for n := range sent {
		total += n
	}
	require.Equal(t, len(runs), total)
	during := uint64(len(runs)) - s.Stats().Rows["stage_runs"]
	require.Greater(t, during, uint64(0), "messages arrived while ClickHouse was down")
	resume()
	back := time.Now()

	conn = openCH(t, addr, cfg.Database)
	waitCount(uint64(len(runs)))
	caughtUp := time.Since(back)
	streamstest.Eventually(t, 30*time.Second, func() bool { return consumerBacklog(t, srv) == 0 }, "the sink's consumers drain")
	require.Equal(t, uint64(len(runs)), count(t, conn, "SELECT count() FROM stage_runs"), "no row lost, none doubled")
	require.Equal(t, uint64(len(runs)), count(t, conn, "SELECT uniqExact(run_id) FROM stage_runs"))
	t.Logf("outage of %s with %d messages waiting; caught up %s after ClickHouse returned (%d failed write attempts)",
		back.Sub(outage).Round(time.Millisecond), during, caughtUp.Round(time.Millisecond), s.Stats().WriteErrors)
}

func TestMalformedTelemetryGoesToTheDLQWithoutBlocking(t *testing.T) {
	addr := clickhouseAddr(t)
	srv := streamstest.Start(t)
	cfg := testConfig(t, addr)
	conn := openCH(t, addr, cfg.Database)
	now := time.Now().UTC()
	good := func(id string) streams.Output {
		r := schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: id, Tenant: "acme", Stage: schemas.StagePreprocess, Attempt: 1, Outcome: "ok", StartedAt: now, DurationMS: 3}
		return jsonOutput(t, schemas.TelemetrySubject(r.Stage), id, r)
	}
	bad := []struct {
		out    streams.Output
		reason string
	}{
		{streams.Output{Subject: "studio.telemetry.preprocess", MsgID: "b1", Data: []byte("not json")}, "is not a JSON object"},
		{streams.Output{Subject: "studio.telemetry.inference", MsgID: "b2", Data: []byte(`{"schema":"studio.telemetry.stage_run/v9","job_id":"x"}`)}, `schema "studio.telemetry.stage_run/v9"`},
		{jsonOutput(t, "studio.telemetry.store", "b3", schemas.StageRun{Schema: schemas.SchemaStageRun, Stage: "store", Outcome: "ok", StartedAt: now}), "missing job_id"},
		{jsonOutput(t, "studio.telemetry.store", "b4", schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: "old", Stage: "store", Outcome: "ok", StartedAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}), "outside 1970..2106"},
		{jsonOutput(t, schemas.SubjectHTTPTelemetry, "b5", schemas.HTTPRequest{Schema: schemas.SchemaHTTPRequest, ID: "h", Time: now, Route: "GET /", Status: 42, SampleRate: 1}), "not an HTTP status"},
	}
	outs := []streams.Output{good("job-a")}
	for _, b := range bad {
		outs = append(outs, b.out)
	}
	outs = append(outs, good("job-b"))
	publish(t, srv, outs...)

	s := startSink(t, srv, cfg)
	waitWritten(t, s, uint64(len(outs)), 30*time.Second)
	require.Equal(t, uint64(len(bad)), s.Stats().DeadLetters)
	require.Equal(t, uint64(2), count(t, conn, "SELECT count() FROM stage_runs"), "the good messages around the bad ones were written")
	streamstest.Eventually(t, 10*time.Second, func() bool { return consumerBacklog(t, srv) == 0 }, "malformed messages do not stay pending")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dlq, err := srv.JS.Stream(ctx, schemas.StreamDLQ)
	require.NoError(t, err)
	info, err := dlq.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(len(bad)), info.State.Msgs)
	bySubject := map[string]int{}
	for i := range bad {
		bySubject[bad[i].out.Subject+"|"+string(bad[i].out.Data)] = i
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := dlq.GetMsg(ctx, seq)
		require.NoError(t, err)
		require.Equal(t, schemas.DLQSubject(sink.DLQStage), m.Subject)
		require.Equal(t, "sink", m.Header.Get(streams.HeaderDLQStage))
		require.Equal(t, schemas.StreamTelemetry, m.Header.Get(streams.HeaderDLQStream))
		i, ok := bySubject[m.Header.Get(streams.HeaderDLQSubject)+"|"+string(m.Data)]
		require.True(t, ok, "DLQ message %d is one of the malformed ones: %s", seq, m.Data)
		require.Contains(t, m.Header.Get(streams.HeaderDLQReason), bad[i].reason)
		require.NotEmpty(t, m.Header.Get(streams.HeaderDLQSeq))
	}
}

func TestErasureDeletesTheUsersRowsAndKeepsTheRecord(t *testing.T) {
	d := newDataset(time.Now().UTC(), 300, 6)
	in := ingest(t, d)
	conn := in.conn
	// The user with the most rows everywhere.
	victim := d.jobs[0].ev
	for _, j := range d.jobs {
		if j.ev.Status == schemas.StatusSucceeded && !j.ev.CacheHit && len(j.runs) > 0 {
			victim = j.ev
			break
		}
	}
	userRows := func() map[string]uint64 {
		return map[string]uint64{
			"jobs":          count(t, conn, "SELECT count() FROM jobs WHERE tenant = ? AND user_id = ?", victim.Tenant, victim.User),
			"stage_runs":    count(t, conn, "SELECT count() FROM stage_runs WHERE tenant = ? AND user_id = ?", victim.Tenant, victim.User),
			"http_requests": count(t, conn, "SELECT count() FROM http_requests WHERE tenant = ? AND user_id = ?", victim.Tenant, victim.User),
			"audit_log":     count(t, conn, "SELECT count() FROM audit_log WHERE tenant = ? AND actor = ?", victim.Tenant, victim.User),
		}
	}
	before := userRows()
	for table, n := range before {
		require.Greater(t, n, uint64(0), "the victim has rows in %s", table)
	}
	others := count(t, conn, "SELECT count() FROM jobs") - before["jobs"]
	// The rollups agree with the raw rows, before and after the erasure.
	rollupsMatchRaw := func() bool {
		daily := queryRows(t, conn, "SELECT toString(day), active_users, jobs FROM jobs_daily ORDER BY day")
		rawDaily := queryRows(t, conn, "SELECT toString(toDate(submitted_at, 'UTC')) AS d, uniqExact(tenant, user_id), uniqExact(job_id) FROM jobs FINAL GROUP BY d ORDER BY d")
		hourly := queryRows(t, conn, "SELECT toString(hour) AS h, sum(requests) FROM jobs_hourly GROUP BY h ORDER BY h")
		rawHourly := queryRows(t, conn, "SELECT toString(toStartOfHour(submitted_at)) AS h, uniqExact(job_id) FROM jobs FINAL GROUP BY h ORDER BY h")
		return fmt.Sprint(daily) == fmt.Sprint(rawDaily) && fmt.Sprint(hourly) == fmt.Sprint(rawHourly)
	}
	require.True(t, rollupsMatchRaw(), "before the erasure, the rollups count what jobs holds")
	usersBefore := count(t, conn, "SELECT toUInt64(sum(active_users)) FROM jobs_daily")

	requested := time.Now().UTC().Add(time.Hour) // after every event of the dataset
	req := schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "erase-1", Tenant: victim.Tenant, User: victim.User, RequestedAt: requested, RequestedBy: "dpo@" + victim.Tenant}
	publish(t, in.srv, jsonOutput(t, schemas.SubjectErasure, req.ID, req))
	streamstest.Eventually(t, 30*time.Second, func() bool { return in.sink.Stats().Erasures == 1 }, "the erasure is applied")
	streamstest.Eventually(t, 60*time.Second, func() bool {
		for _, n := range userRows() {
			if n != 0 {
				return false
			}
		}
		return count(t, conn, "SELECT count() FROM feedback WHERE tenant = ? AND user_id = ?", victim.Tenant, victim.User) == 0
	}, "the user's rows disappear once the mutations ran")
	require.Equal(t, others, count(t, conn, "SELECT count() FROM jobs"), "other users keep their rows")
	streamstest.Eventually(t, 60*time.Second, rollupsMatchRaw, "the rollups of the erased periods are recomputed without the user")
	require.Less(t, count(t, conn, "SELECT toUInt64(sum(active_users)) FROM jobs_daily"), usersBefore, "the erased user no longer counts as active")

	rec := queryRows(t, conn, "SELECT actor, action, resource, result FROM audit_log WHERE id = 'erase-1'")
	require.Equal(t, [][]any{{"dpo@" + victim.Tenant, "erasure", "user/" + victim.User, "applied"}}, rec, "audit_log keeps the erasure record")
	require.Equal(t, uint64(1), count(t, conn, "SELECT count() FROM erasures WHERE tenant = ? AND user_id = ? AND applied_at > toDateTime(0)", victim.Tenant, victim.User))

	// Events of the user that were still queued arrive after the delete: dropped. The
	// user's activity after the request is kept.
	late, after := victim, victim
	late.JobID, late.SubmittedAt = "late-job", victim.SubmittedAt
	after.JobID, after.SubmittedAt, after.FinishedAt = "after-job", requested.Add(time.Minute), requested.Add(2*time.Minute)
	publish(t, in.srv, jsonOutput(t, schemas.ResultSubject(late.Tenant, late.Task), late.JobID+":result", late),
		jsonOutput(t, schemas.ResultSubject(after.Tenant, after.Task), after.JobID+":result", after))
	waitWritten(t, in.sink, in.sent+3, 30*time.Second)
	require.Equal(t, uint64(1), in.sink.Stats().ErasedRows)
	require.Equal(t, [][]any{{"after-job"}}, queryRows(t, conn, fmt.Sprintf("SELECT job_id FROM jobs WHERE tenant = '%s' AND user_id = '%s'", victim.Tenant, victim.User)))
}

func TestMigrateIsVersionedAndSafeToRerun(t *testing.T) {
	addr := clickhouseAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all, err := sink.Migrations()
	require.NoError(t, err)
	var version string
	require.NoError(t, openCH(t, addr, "").QueryRow(ctx, "SELECT version()").Scan(&version))
	var runs []sink.Migration // the migrations for this server's version
	for _, m := range all {
		if m.RunsOn(version) {
			runs = append(runs, m)
		}
	}

	t.Run("a fresh database gets every migration for its version, a rerun none", func(t *testing.T) {
		cfg := testConfig(t, addr)
		applied, err := sink.Migrate(ctx, cfg)
		require.NoError(t, err)
		require.Len(t, applied, len(runs))
		again, err := sink.Migrate(ctx, cfg)
		require.NoError(t, err)
		require.Empty(t, again)
		conn := openCH(t, addr, cfg.Database)
		require.Equal(t, uint64(len(runs)), count(t, conn, "SELECT uniqExact(version) FROM schema_migrations"))
		for _, table := range []string{"jobs", "stage_runs", "http_requests", "audit_log", "feedback", "erasures", "jobs_hourly", "jobs_daily"} {
			require.Equal(t, uint64(1), count(t, conn, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", table), table)
		}
	})

	t.Run("an older schema is upgraded with the missing migrations only", func(t *testing.T) {
		cfg := testConfig(t, addr)
		first, err := sink.MigrateTo(ctx, cfg, 1)
		require.NoError(t, err)
		require.Equal(t, []string{all[0].Name}, first)
		conn := openCH(t, addr, cfg.Database)
		require.Equal(t, uint64(0), count(t, conn, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'jobs_hourly'"))

		// A sink that may not migrate refuses the old schema and says what to do.
		strict := cfg
		strict.Migrate = false
		err = sink.Run(ctx, strict, streams.Engine{})
		require.ErrorIs(t, err, sink.ErrSchemaOutdated)
		require.ErrorContains(t, err, "studio migrate")

		rest, err := sink.Migrate(ctx, cfg)
		require.NoError(t, err)
		require.Equal(t, []string{all[1].Name}, rest[:1])
		require.Len(t, rest, len(runs)-1)
	})

	t.Run("an edited migration is refused", func(t *testing.T) {
		cfg := testConfig(t, addr)
		_, err := sink.MigrateTo(ctx, cfg, 1)
		require.NoError(t, err)
		conn := openCH(t, addr, cfg.Database)
		require.NoError(t, conn.Exec(ctx, "TRUNCATE TABLE schema_migrations"))
		b, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, checksum, applied_at)")
		require.NoError(t, err)
		require.NoError(t, b.Append(uint32(1), all[0].Name, strings.Repeat("0", 64), time.Now()))
		require.NoError(t, b.Send())
		_, err = sink.Migrate(ctx, cfg)
		require.ErrorIs(t, err, sink.ErrMigrationChanged)
	})

	t.Run("ADD COLUMN is skipped when the column exists", func(t *testing.T) {
		cfg := testConfig(t, addr)
		_, err := sink.Migrate(ctx, cfg)
		require.NoError(t, err)
		conn := openCH(t, addr, cfg.Database)
		for stmt, want := range map[string]bool{
			"ALTER TABLE jobs ADD COLUMN trace_id String":             true,
			"ALTER TABLE jobs ADD COLUMN fallback_from String AFTER":  false,
			"CREATE TABLE IF NOT EXISTS x (a String) ENGINE = Memory": false,
		} {
			got, err := sink.ColumnExists(ctx, conn, stmt)
			require.NoError(t, err)
			require.Equal(t, want, got, stmt)
		}
	})

	t.Run("a sink waits for ClickHouse instead of failing", func(t *testing.T) {
		cfg := testConfig(t, "127.0.0.1:1") // nothing listens on port 1
		rctx, rcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer rcancel()
		require.NoError(t, sink.Run(rctx, cfg, streams.Engine{}), "Run returns quietly when cancelled while waiting")
	})
}

// TestErasureReachesTheRollupsOnEveryEngine erases one user through the sink and checks,
// on each engine, that the user's jobs are gone and that the rollups (whose uniqExact
// states held the user's ids) were recomputed to match the rows that are left.
func TestErasureReachesTheRollupsOnEveryEngine(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			d := newDataset(time.Now().UTC(), 120, 4)
			in := ingestInto(t, d, cfg)
			victim := d.jobs[0].ev
			one := func(q string) string { return fmt.Sprint(e.rows(t, cfg, q)) }
			match := func() bool {
				return one("SELECT toString(day), active_users, jobs FROM jobs_daily ORDER BY day") ==
					one("SELECT toString(toDate(submitted_at, 'UTC')) AS d, uniqExact(tenant, user_id), uniqExact(job_id) FROM jobs FINAL GROUP BY d ORDER BY d") &&
					one("SELECT toString(hour) AS h, sum(requests) FROM jobs_hourly GROUP BY h ORDER BY h") ==
						one("SELECT toString(toStartOfHour(submitted_at)) AS h, uniqExact(job_id) FROM jobs FINAL GROUP BY h ORDER BY h")
			}
			require.True(t, match(), "before the erasure, the rollups count what jobs holds")
			users := one("SELECT sum(active_users) FROM jobs_daily")

			req := schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "erase-rollups", Tenant: victim.Tenant, User: victim.User,
				RequestedAt: time.Now().UTC().Add(time.Hour), RequestedBy: "dpo@" + victim.Tenant}
			publish(t, in.srv, jsonOutput(t, schemas.SubjectErasure, req.ID, req))
			streamstest.Eventually(t, 60*time.Second, func() bool { return in.sink.Stats().Erasures == 1 }, "the erasure is applied")
			userJobs := fmt.Sprintf("SELECT count() FROM jobs WHERE tenant = '%s' AND user_id = '%s'", victim.Tenant, victim.User)
			streamstest.Eventually(t, 60*time.Second, func() bool { return one(userJobs) == "[[0]]" && match() },
				"the user's jobs are gone and the rollups match the rows left")
			require.NotEqual(t, users, one("SELECT sum(active_users) FROM jobs_daily"), "the erased user no longer counts as active")
		})
	}
}
