package processors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestDefaultJobDeadlineCoversEveryStagesRedeliveries(t *testing.T) {
	var stages time.Duration
	for _, s := range processors.Stages {
		stages += time.Duration(s.MaxDeliver) * max(s.AckWait, s.Timeout)
	}
	d := processors.DefaultJobDeadline()
	require.Greater(t, d, stages, "a job must get every delivery of every stage before its deadline")
	require.Equal(t, 90*time.Minute, d, "the README documents 90 minutes")
}

func TestDeadlinesFailOverdueJobsOnceAndLeaveTheRestAlone(t *testing.T) {
	s := streamstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	const deadline = 3 * time.Second
	now := time.Now().UTC()
	create := func(id string, status schemas.Status, stage schemas.Stage, submitted time.Time) {
		t.Helper()
		require.NoError(t, store.Create(ctx, &schemas.JobRecord{
			ID: id, Tenant: "acme", User: "u1", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground,
			Status: status, Stage: stage, SubmittedAt: submitted,
		}))
	}
	// Known before the sweeper starts: read from the bucket's current values.
	create("stuck-queued", schemas.StatusQueued, schemas.StageIngest, now.Add(-time.Hour))
	create("stuck-running", schemas.StatusRunning, schemas.StageInference, now.Add(-time.Hour))
	create("old-but-done", schemas.StatusSucceeded, schemas.StageStore, now.Add(-time.Hour))

	d := &processors.Deadlines{Jobs: store, Pub: streams.JSPublisher{JS: s.JS}, Deadline: deadline, Interval: 100 * time.Millisecond, Log: quietLog()}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	// Submitted while the sweeper runs: seen through the watch.
	freshAt := time.Now()
	create("fresh", schemas.StatusQueued, schemas.StageIngest, freshAt.UTC())
	create("fresh-finished", schemas.StatusQueued, schemas.StageIngest, time.Now().UTC())
	_, err = store.Update(ctx, "fresh-finished", func(r *schemas.JobRecord) error {
		r.Status = schemas.StatusSucceeded
		return nil
	})
	require.NoError(t, err)

	status := func(id string) schemas.Status {
		rec, err := store.Get(ctx, id)
		require.NoError(t, err)
		return rec.Status
	}
	streamstest.Eventually(t, 10*time.Second, func() bool {
		return status("stuck-queued") == schemas.StatusFailed && status("stuck-running") == schemas.StatusFailed
	}, "overdue jobs were not failed")
	if fresh := status("fresh"); time.Since(freshAt) < deadline-time.Second {
		require.Equal(t, schemas.StatusQueued, fresh, "a job within its deadline was failed")
	}
	streamstest.Eventually(t, 3*deadline, func() bool { return status("fresh") == schemas.StatusFailed },
		"a job submitted while the sweeper ran was not failed once overdue")
	require.Equal(t, schemas.StatusSucceeded, status("old-but-done"))
	require.Equal(t, schemas.StatusSucceeded, status("fresh-finished"))

	rec, err := store.Get(ctx, "stuck-running")
	require.NoError(t, err)
	require.Equal(t, processors.CodeDeadlineExceeded, rec.Error.Code)
	require.Equal(t, schemas.StageInference, rec.Error.Stage)

	// Exactly one failed result per overdue job, none for the others.
	results := map[string][]schemas.ResultEvent{}
	streamstest.Eventually(t, 10*time.Second, func() bool {
		clear(results)
		for _, res := range resultEvents(t, s) {
			results[res.JobID] = append(results[res.JobID], res)
		}
		return len(results) == 3
	}, "results of overdue jobs missing: %v", results)
	for _, id := range []string{"stuck-queued", "stuck-running", "fresh"} {
		require.Len(t, results[id], 1, id)
		require.Equal(t, schemas.StatusFailed, results[id][0].Status)
		require.Equal(t, processors.CodeDeadlineExceeded, results[id][0].Error.Code)
		require.Equal(t, "u1", results[id][0].User)
	}
}

// resultEvents reads every event of the RESULTS stream.
func resultEvents(t *testing.T, s *streamstest.Server) []schemas.ResultEvent {
	t.Helper()
	ctx := context.Background()
	st, err := s.JS.Stream(ctx, schemas.StreamResults)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	var out []schemas.ResultEvent
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		require.NoError(t, err)
		var res schemas.ResultEvent
		require.NoError(t, json.Unmarshal(m.Data, &res))
		out = append(out, res)
	}
	return out
}
