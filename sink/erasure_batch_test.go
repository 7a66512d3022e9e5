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
