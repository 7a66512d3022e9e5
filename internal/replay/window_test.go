package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

type window struct {
	js    jetstream.JetStream
	store *jobs.Store
}

func newWindow(t *testing.T) *window {
	t.Helper()
	s := streamstest.Start(t)
	store, err := jobs.Open(context.Background(), s.JS)
	require.NoError(t, err)
	return &window{js: s.JS, store: store}
}

// request publishes a job request and creates its record with status st.
func (w *window) request(t *testing.T, id, user string, task schemas.Task, st schemas.Status, submitted time.Time) {
	t.Helper()
	ctx := context.Background()
	ev := schemas.JobEvent{Schema: schemas.SchemaJobRequested, JobID: id, Tenant: "acme", User: user, Tier: schemas.TierNormal,
		Task: task, Model: "isnet", ModelVersion: "1", SubmittedAt: submitted}
	data, err := json.Marshal(ev)
	require.NoError(t, err)
	_, err = w.js.Publish(ctx, schemas.RequestSubject(ev.Tier, task), data)
	require.NoError(t, err)
	require.NoError(t, w.store.Create(ctx, &schemas.JobRecord{ID: id, Tenant: "acme", User: user, Tier: ev.Tier, Task: task,
		Model: "isnet", ModelVersion: "1", Status: st, SubmittedAt: submitted}))
}

func (w *window) erase(t *testing.T, user string, at time.Time) {
	t.Helper()
	data, err := json.Marshal(schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "e-" + user, Tenant: "acme", User: user, RequestedAt: at})
	require.NoError(t, err)
	_, err = w.js.Publish(context.Background(), schemas.SubjectErasure, data)
	require.NoError(t, err)
}

func ids(reqs []replay.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Event.JobID)
	}
	return out
}

func TestReadWindowSelectsReplayableRequests(t *testing.T) {
	w := newWindow(t)
	ctx := context.Background()
	now := time.Now().UTC()
	w.request(t, "job-a", "ann", schemas.TaskRemoveBackground, schemas.StatusSucceeded, now)
	w.request(t, "job-b", "bob", schemas.TaskRemoveBackground, schemas.StatusSucceeded, now)
	w.request(t, "job-c", "ann", schemas.TaskUpscale, schemas.StatusSucceeded, now)
	w.request(t, "job-d", "ann", schemas.TaskRemoveBackground, schemas.StatusFailed, now)
	w.request(t, "job-e", "ann", schemas.TaskRemoveBackground, schemas.StatusSucceeded, now)
	// bob was erased after submitting job-b; the stream still holds it (an erasure
	// that has not reached the stream yet, or a replay reading an old copy).
	w.erase(t, "bob", now.Add(time.Second))

	all := replay.Window{Task: schemas.TaskRemoveBackground, Since: now.Add(-time.Hour)}
	got, skipped, err := replay.ReadWindow(ctx, w.js, w.store, all)
	require.NoError(t, err)
	require.Equal(t, []string{"job-a", "job-e"}, ids(got), "the task's succeeded requests of users not erased, in stream order")
	require.Equal(t, replay.Skipped{Erased: 1, Unfinished: 1}, skipped)
	require.Equal(t, schemas.StatusSucceeded, got[0].Original.Status)

	t.Run("an erased user's requests are never replayed, even unsampled", func(t *testing.T) {
		for _, share := range []float64{0, 0.5, 1} {
			got, _, err := replay.ReadWindow(ctx, w.js, w.store, replay.Window{Task: schemas.TaskRemoveBackground, Since: all.Since, Sample: share})
			require.NoError(t, err)
			require.NotContains(t, ids(got), "job-b")
		}
	})
	t.Run("a user's requests after an earlier erasure are replayed", func(t *testing.T) {
		w.request(t, "job-f", "bob", schemas.TaskRemoveBackground, schemas.StatusSucceeded, now.Add(time.Minute))
		got, _, err := replay.ReadWindow(ctx, w.js, w.store, all)
		require.NoError(t, err)
		require.Equal(t, []string{"job-a", "job-e", "job-f"}, ids(got))
	})
	t.Run("a shadow run is never selected", func(t *testing.T) {
		ev := schemas.JobEvent{Schema: schemas.SchemaJobRequested, JobID: "shadow-x-job-a", Tenant: "acme", User: "ann", Tier: replay.ShadowTier,
			Task: schemas.TaskRemoveBackground, Model: "isnet", ModelVersion: "2", SubmittedAt: now, Shadow: true}
		data, err := json.Marshal(ev)
		require.NoError(t, err)
		_, err = w.js.Publish(ctx, schemas.RequestSubject(ev.Tier, ev.Task), data)
		require.NoError(t, err)
		require.NoError(t, w.store.Create(ctx, &schemas.JobRecord{ID: ev.JobID, Tenant: "acme", User: "ann", Task: ev.Task, Status: schemas.StatusSucceeded, Shadow: true}))
		got, skipped, err := replay.ReadWindow(ctx, w.js, w.store, all)
		require.NoError(t, err)
		require.NotContains(t, ids(got), ev.JobID)
		require.Equal(t, 1, skipped.Shadow)
	})
	t.Run("the limit bounds the selection", func(t *testing.T) {
		got, skipped, err := replay.ReadWindow(ctx, w.js, w.store, replay.Window{Task: schemas.TaskRemoveBackground, Since: all.Since, Limit: 1})
		require.NoError(t, err)
		require.Equal(t, []string{"job-a"}, ids(got))
		require.Equal(t, 3, skipped.OverLimit, "every later request of the window, unchecked")
		require.Equal(t, 1, skipped.Shadow, "shadow runs are left out before the limit counts")
	})
	t.Run("a start after every request selects nothing", func(t *testing.T) {
		got, _, err := replay.ReadWindow(ctx, w.js, w.store, replay.Window{Task: schemas.TaskRemoveBackground, Since: time.Now().Add(time.Hour)})
		require.NoError(t, err)
		require.Empty(t, got)
	})
	t.Run("an expired original is skipped", func(t *testing.T) {
		require.NoError(t, w.store.Delete(ctx, "job-e"))
		got, skipped, err := replay.ReadWindow(ctx, w.js, w.store, all)
		require.NoError(t, err)
		require.NotContains(t, ids(got), "job-e")
		require.Equal(t, 1, skipped.Gone)
	})
}

func TestReadWindowSamplesTheSameJobsEveryTime(t *testing.T) {
	w := newWindow(t)
	now := time.Now().UTC()
	for i := range 200 {
		w.request(t, fmt.Sprintf("job-%03d", i), "ann", schemas.TaskOCR, schemas.StatusSucceeded, now)
	}
	win := replay.Window{Task: schemas.TaskOCR, Since: now.Add(-time.Minute), Sample: 0.1}
	a, skipped, err := replay.ReadWindow(context.Background(), w.js, w.store, win)
	require.NoError(t, err)
	b, _, err := replay.ReadWindow(context.Background(), w.js, w.store, win)
	require.NoError(t, err)
	require.Equal(t, ids(a), ids(b), "the sample hashes job ids")
	require.InDelta(t, 20, len(a), 12, "about a tenth of 200")
	require.Equal(t, 200, len(a)+skipped.NotSampled)
}

func TestWindowValidate(t *testing.T) {
	ok := replay.Window{Task: schemas.TaskOCR, Since: time.Now()}
	tests := []struct {
		name string
		w    func(replay.Window) replay.Window
		want string
	}{
		{"a valid window", func(w replay.Window) replay.Window { return w }, ""},
		{"a task with a dot", func(w replay.Window) replay.Window { w.Task = "a.b"; return w }, "not a task name"},
		{"no start", func(w replay.Window) replay.Window { w.Since = time.Time{}; return w }, "--since"},
		{"a sample over one", func(w replay.Window) replay.Window { w.Sample = 10; return w }, "between 0 and 1"},
		{"a negative limit", func(w replay.Window) replay.Window { w.Limit = -1; return w }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.w(ok).Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}
