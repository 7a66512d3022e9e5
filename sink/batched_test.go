package sink_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// publishBatched sends the dataset as a rolling upgrade does: the stage runs of every
// other job and all HTTP and audit rows in batch messages through the producers'
// batchers (flushed by Close), the rest as single-row events of older producers. It
// also sends one batch again under a new message id (a producer that retried past the
// stream's de-duplication window), whose rows the sink must recognise by their ids.
func publishBatched(t *testing.T, srv *streamstest.Server, d *dataset) {
	t.Helper()
	pub := streams.JSPublisher{JS: srv.JS}
	cfg := telemetry.Config{Producer: "test", MaxRows: 64, MaxWait: time.Hour}
	runs := telemetry.New(cfg, pub, telemetry.EncodeStageRuns)
	httpRows := telemetry.New(cfg, pub, telemetry.EncodeHTTPRequests)
	audit := telemetry.New(cfg, pub, telemetry.EncodeAudit)
	var single []streams.Output
	var again []schemas.StageRun
	for n, j := range d.jobs {
		for i := range j.runs {
			r := &j.runs[i]
			if n%2 == 0 {
				runs.Add(*r)
				if len(again) < 50 {
					again = append(again, *r)
				}
				continue
			}
			single = append(single, jsonOutput(t, schemas.TelemetrySubject(r.Stage), fmt.Sprintf("%s:%s:%d:%s", r.JobID, r.Stage, r.Attempt, r.Outcome), r))
		}
		single = append(single, jsonOutput(t, schemas.ResultSubject(j.ev.Tenant, j.ev.Task), j.ev.JobID+":result", j.ev))
	}
	for _, h := range d.http {
		httpRows.Add(h)
	}
	for _, a := range d.audit {
		audit.Add(a)
	}
	for _, f := range d.feedback {
		single = append(single, jsonOutput(t, schemas.SubjectFeedback, f.ID, f))
	}
	publish(t, srv, single...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range []interface {
		Close(context.Context) error
		Stats() telemetry.Stats
	}{runs, httpRows, audit} {
		require.NoError(t, b.Close(ctx), "the flush on close publishes every row")
		require.Zero(t, b.Stats().Lost)
	}
	require.Equal(t, uint64(len(d.http)), httpRows.Stats().Rows)
	require.Equal(t, uint64(len(d.audit)), audit.Stats().Rows)
	out, err := telemetry.EncodeStageRuns("restarted-producer", 1, again)
	require.NoError(t, err)
	publish(t, srv, out)
}

func TestBatchedTelemetryLandsExactlyOnceThroughASinkCrash(t *testing.T) {
	addr := clickhouseAddr(t)
	srv := streamstest.Start(t)
	natsURL := srv.Embedded.ClientURL()
	cfg := testConfig(t, addr)
	conn := openCH(t, addr, cfg.Database)

	d := newDataset(time.Now().UTC(), 500, 11)
	publishBatched(t, srv, d)

	// Killed between commit and ack: a committed batch of messages, single-row and
	// batched, comes back to the next sink, which writes none of its rows twice.
	c := startChild(t, natsURL, cfg, 96, 2)
	ws := c.wait(t, 60*time.Second)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "the child should have killed itself after a commit: %v\n%s", ws, c.stderr)
	require.Greater(t, count(t, conn, "SELECT count() FROM stage_runs"), uint64(0))

	s := startSink(t, srv, cfg)
	waitCount(t, conn, 60*time.Second, uint64(d.stageRuns()), "SELECT count() FROM stage_runs")
	streamstest.Eventually(t, 60*time.Second, func() bool { return consumerBacklog(t, srv) == 0 }, "the sink's consumers drain")
	requireExactlyOnce(t, conn, d.tableCounts())
	require.GreaterOrEqual(t, s.Stats().Duplicates, uint64(50), "the batch sent again and the redelivered messages were recognised by row id")
	require.Zero(t, s.Stats().DeadLetters)
	t.Logf("%d duplicate rows skipped", s.Stats().Duplicates)
}
