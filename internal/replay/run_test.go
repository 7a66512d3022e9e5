package replay_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

// TestRunReportsShadowRunsThatNeverFinish runs a replay with no stage workers: the
// shadow job is recorded and queued on the shadow lane, cancelled when the wait runs
// out, and reported as a failed row that is also published for replay_results.
func TestRunReportsShadowRunsThatNeverFinish(t *testing.T) {
	w := newWindow(t)
	ctx := context.Background()
	now := time.Now().UTC()
	w.request(t, "job-a", "ann", schemas.TaskRemoveBackground, schemas.StatusSucceeded, now)
	blobs, err := natsobj.Open(ctx, w.js, natsobj.Bucket)
	require.NoError(t, err)
	to := models.Spec{Manifest: models.Manifest{Name: "isnet", Version: "2", Task: schemas.TaskRemoveBackground}}
	r := &replay.Runner{JS: w.js, Jobs: w.store, Blobs: blobs, Poll: 20 * time.Millisecond}

	rep, err := r.Run(ctx, replay.Plan{Window: replay.Window{Task: schemas.TaskRemoveBackground, Since: now.Add(-time.Hour)}, To: to, ID: "rp-test", Wait: 300 * time.Millisecond})
	require.NoError(t, err)
	require.Len(t, rep.Rows, 1)
	row := rep.Rows[0]
	require.Equal(t, schemas.ReplayFailed, row.Outcome)
	require.Equal(t, "shadow-test-job-a", row.ShadowJobID)
	require.Contains(t, row.Error, "cancelled: replay_timeout")

	shadow, err := w.store.Get(ctx, row.ShadowJobID)
	require.NoError(t, err)
	require.True(t, shadow.Shadow)
	require.Equal(t, "job-a", shadow.ShadowOf)
	require.Equal(t, "ann", shadow.User, "the shadow job belongs to the original's user, for erasure")
	require.Equal(t, replay.ShadowTier, shadow.Tier)
	require.Equal(t, "2", shadow.ModelVersion)

	st, err := w.js.Stream(ctx, schemas.StreamRequests)
	require.NoError(t, err)
	msg, err := st.GetLastMsgForSubject(ctx, schemas.RequestSubject(replay.ShadowTier, schemas.TaskRemoveBackground))
	require.NoError(t, err)
	var ev schemas.JobEvent
	require.NoError(t, json.Unmarshal(msg.Data, &ev))
	require.True(t, ev.Shadow)
	require.Equal(t, "2", ev.ModelVersion)

	tel, err := w.js.Stream(ctx, schemas.StreamTelemetry)
	require.NoError(t, err)
	msg, err = tel.GetLastMsgForSubject(ctx, schemas.SubjectReplayResults)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(msg.Data), `"replay_id":"rp-test"`), "published row %s", msg.Data)
}

func TestTarget(t *testing.T) {
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.Spec{Manifest: models.Manifest{Name: "isnet", Version: "2", Task: schemas.TaskRemoveBackground}}))
	cases := []struct {
		name, to, want string
	}{
		{"a version of the task is the target", "isnet@2", ""},
		{"no version", "isnet", "must be model@version"},
		{"an unknown version", "isnet@9", "not in the catalog"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := replay.Target(cat, schemas.TaskRemoveBackground, c.to)
			if c.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, c.want)
		})
	}
	_, err := replay.Target(cat, schemas.TaskUpscale, "isnet@2")
	require.ErrorContains(t, err, "serves remove-background, not upscale")
}
