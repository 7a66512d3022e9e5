package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestErasureKeepsOtherUsersBatchedRowsOnEveryEngine erases acme/alice while telemetry
// batches hold her rows beside bob's and globex/alice's: one batch the sink has written
// already, one it has not read yet. The eraser publishes both again without her rows;
// afterwards her rows are gone from the stream and from the analytics store, and every
// other row is stored exactly once.
func TestErasureKeepsOtherUsersBatchedRowsOnEveryEngine(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			srv := streamstest.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := sink.Migrate(ctx, cfg)
			require.NoError(t, err)
			at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
			run := func(tenant, user, job string) schemas.StageRun {
				return schemas.StageRun{Schema: schemas.SchemaStageRun, JobID: job, Tenant: tenant, User: user, Tier: schemas.TierNormal,
					Task: schemas.TaskRemoveBackground, Stage: schemas.StagePreprocess, Attempt: 1, Outcome: "ok", StartedAt: at, DurationMS: 5}
			}
			req := func(tenant, user, id string) schemas.HTTPRequest {
				return schemas.HTTPRequest{Schema: schemas.SchemaHTTPRequest, ID: id, Tenant: tenant, User: user, Method: "POST",
					Route: "POST /v1/jobs", Status: 202, SampleRate: 1, Time: at}
			}
			written, err := telemetry.EncodeStageRuns("p", 1, []schemas.StageRun{
				run("acme", "alice", "a1"), run("acme", "bob", "b1"), run("acme", "alice", "a2"), run("globex", "alice", "g1")})
			require.NoError(t, err)
			httpRows, err := telemetry.EncodeHTTPRequests("p", 2, []schemas.HTTPRequest{
				req("acme", "bob", "h-b1"), req("acme", "alice", "h-a1"), req("acme", "bob", "h-b2")})
			require.NoError(t, err)
			publish(t, srv, written, httpRows)
			s := startSink(t, srv, cfg)
			one := func(q string) string { return fmt.Sprint(e.rows(t, cfg, q)) }
			streamstest.Eventually(t, 60*time.Second, func() bool {
				return one("SELECT count() FROM stage_runs") == "[[4]]" && one("SELECT count() FROM http_requests") == "[[3]]"
			}, "the first batches are written")
			s.stop()

			// Not read yet when the erasure runs: only its copy reaches the sink.
			unread, err := telemetry.EncodeStageRuns("p", 3, []schemas.StageRun{
				run("acme", "bob", "b2"), run("acme", "alice", "a3"), run("acme", "bob", "b3")})
			require.NoError(t, err)
			publish(t, srv, unread)

			blobs, err := natsobj.Open(ctx, srv.JS, natsobj.Bucket)
			require.NoError(t, err)
			eraser, err := erasure.NewEraser(ctx, srv.JS, blobs)
			require.NoError(t, err)
			rep, err := eraser.Erase(ctx, "acme", "alice", erasure.WithRequestedBy("dpo"))
			require.NoError(t, err)
			require.Equal(t, 3, rep.Rewritten[schemas.StreamTelemetry], "the three batches are published again without alice's rows")

			// The stream keeps the other users' rows, once each, and none of alice's.
			telemetryRows := map[string]int{}
			st, err := srv.JS.Stream(ctx, schemas.StreamTelemetry)
			require.NoError(t, err)
			info, err := st.Info(ctx)
			require.NoError(t, err)
			for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(ctx, seq)
				if err != nil {
					continue // the deleted originals
				}
				var b schemas.TelemetryBatch
				require.NoError(t, json.Unmarshal(m.Data, &b))
				for _, r := range b.StageRuns {
					telemetryRows[r.Tenant+"/"+r.User+"/"+r.JobID]++
				}
				for _, r := range b.HTTPRequests {
					telemetryRows[r.Tenant+"/"+r.User+"/"+r.ID]++
				}
			}
			require.Equal(t, map[string]int{"acme/bob/b1": 1, "globex/alice/g1": 1, "acme/bob/b2": 1, "acme/bob/b3": 1, "acme/bob/h-b1": 1, "acme/bob/h-b2": 1},
				telemetryRows, "the stream holds every other row once and none of alice's")

			s = startSink(t, srv, cfg)
			streamstest.Eventually(t, 60*time.Second, func() bool { return s.Stats().Erasures == 1 }, "the erasure is applied")
			streamstest.Eventually(t, 60*time.Second, func() bool {
				return one("SELECT count() FROM stage_runs WHERE tenant = 'acme' AND user_id = 'alice'") == "[[0]]" &&
					one("SELECT count() FROM http_requests WHERE tenant = 'acme' AND user_id = 'alice'") == "[[0]]"
			}, "alice's rows are gone")
			streamstest.Eventually(t, 60*time.Second, func() bool {
				return one("SELECT count() FROM stage_runs WHERE NOT (tenant = 'acme' AND user_id = 'alice')") == "[[4]]"
			}, "the unread batch's other rows arrive through its copy")
			require.Equal(t, "[[acme bob b1 1] [acme bob b2 1] [acme bob b3 1] [globex alice g1 1]]",
				one("SELECT tenant, user_id, job_id, toUInt64(count()) FROM stage_runs GROUP BY tenant, user_id, job_id ORDER BY tenant, user_id, job_id"),
				"every other stage run is stored exactly once")
			require.Equal(t, "[[h-b1 1] [h-b2 1]]", one("SELECT id, toUInt64(count()) FROM http_requests GROUP BY id ORDER BY id"),
				"every other HTTP row is stored exactly once")
			require.GreaterOrEqual(t, s.Stats().Duplicates, uint64(4), "the copies of the batches written before were recognised by row id")
			require.Zero(t, s.Stats().DeadLetters)
		})
	}
}

// TestErasureRetriedAfterARollupFailureStillReachesTheRollups makes the recompute of
// the daily rollup fail (its state table is renamed away) while an erasure is applied:
// the sink retries, and once the table is back the retry still finds the periods the
// user had jobs in, so no state keeps the user's ids.
func TestErasureRetriedAfterARollupFailureStillReachesTheRollups(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			d := newDataset(time.Now().UTC(), 120, 5)
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
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			require.NoError(t, sink.Exec(ctx, cfg, "RENAME TABLE jobs_daily_state TO jobs_daily_state_away"))

			req := schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "erase-retried", Tenant: victim.Tenant, User: victim.User,
				RequestedAt: time.Now().UTC().Add(time.Hour), RequestedBy: "dpo@" + victim.Tenant}
			publish(t, in.srv, jsonOutput(t, schemas.SubjectErasure, req.ID, req))
			streamstest.Eventually(t, 60*time.Second, func() bool { return in.sink.Stats().WriteErrors >= 3 }, "the erasure fails and is retried")
			time.Sleep(2 * time.Second) // time for delete mutations, had any been issued, to run
			require.NoError(t, sink.Exec(ctx, cfg, "RENAME TABLE jobs_daily_state_away TO jobs_daily_state"))

			streamstest.Eventually(t, 60*time.Second, func() bool { return in.sink.Stats().Erasures == 1 }, "the retried erasure is applied")
			userJobs := fmt.Sprintf("SELECT count() FROM jobs WHERE tenant = '%s' AND user_id = '%s'", victim.Tenant, victim.User)
			streamstest.Eventually(t, 60*time.Second, func() bool { return one(userJobs) == "[[0]]" && match() },
				"the user's jobs are gone and both rollups match the rows left")
		})
	}
}
