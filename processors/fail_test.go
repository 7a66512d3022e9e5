package processors_test

import (
	"context"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
)

// TestAJobWhoseRecordVanishedStillEndsForItsClient: a stage that fails a job whose
// record it cannot read still publishes the failed result, so the client learns the
// end and the slot release frees the user's active-job slot.
func TestAJobWhoseRecordVanishedStillEndsForItsClient(t *testing.T) {
	p := newPipeline(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	active, err := quota.OpenActiveJobs(ctx, p.srv.JS)
	require.NoError(t, err)

	const id = "vanished-record"
	require.NoError(t, active.Acquire(ctx, "local", "upstream", id, 4))
	rec := p.upstream(t, id, "isnet", encodeJPEG(t, photoImage(32, 32)))
	// The record goes away while the request waits for preprocess.
	require.NoError(t, p.jobs.Delete(ctx, rec.ID))

	release := make(chan error, 1)
	go func() {
		release <- app.RunSlotRelease(ctx, &app.Config{Worker: "test-release"}, &app.Bus{NC: p.srv.NC, JS: p.srv.JS}, active, nil, logrus.StandardLogger())
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-release:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("the slot release did not stop within 30s")
		}
	})
	p.run(t)

	var results []schemas.ResultEvent
	require.Eventually(t, func() bool { results = p.results(t, id); return len(results) > 0 }, settle, 50*time.Millisecond,
		"the client never got a result for a job whose record vanished")
	require.Len(t, results, 1)
	res := results[0]
	require.Equal(t, schemas.StatusFailed, res.Status)
	require.NotNil(t, res.Error)
	require.Equal(t, processors.CodeBadEvent, res.Error.Code)
	require.Equal(t, schemas.StagePreprocess, res.Error.Stage)
	require.Equal(t, "upstream", res.User)
	require.Equal(t, rec.Input, res.Input)
	require.Eventually(t, func() bool {
		ids, err := active.Active(ctx, "local", "upstream")
		return err == nil && len(ids) == 0
	}, settle, 50*time.Millisecond, "the user's active-job slot was never freed")
}
