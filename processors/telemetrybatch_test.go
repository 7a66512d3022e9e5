package processors_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestStageTelemetryIsBatchedAndFlushedWhenTheStageStops(t *testing.T) {
	p := newPipelineWith(t, func(c *app.Config) {
		// Never full, never due: only the flush on shutdown publishes the batch.
		c.TelemetryBatchRows, c.TelemetryBatchWait = 64, time.Hour
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunStages(ctx, p.stages) }()
	var ids []string
	for range 3 {
		rec := p.submit(t, encodeJPEG(t, photoImage(32, 32)))
		ids = append(ids, rec.ID)
	}
	for _, id := range ids {
		streamstest.Eventually(t, settle, func() bool { return len(p.preprocessed(t, id)) > 0 }, "job %s was not preprocessed", id)
	}
	require.Empty(t, p.msgs(t, schemas.StreamTelemetry, schemas.SubjectTelemetryBatch), "the batch waits for more rows")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the stage did not stop")
	}

	require.Empty(t, p.msgs(t, schemas.StreamTelemetry, schemas.TelemetrySubject(schemas.StagePreprocess)), "no run went out alone")
	msgs := p.msgs(t, schemas.StreamTelemetry, schemas.SubjectTelemetryBatch)
	require.Len(t, msgs, 1, "the stage published its runs in one message when it stopped")
	var b schemas.TelemetryBatch
	require.NoError(t, json.Unmarshal(msgs[0].Data, &b))
	require.NoError(t, b.Validate())
	require.Contains(t, msgs[0].Header.Get("Nats-Msg-Id"), b.Producer)
	var got []string
	for _, r := range b.StageRuns {
		require.Equal(t, schemas.SchemaStageRun, r.Schema)
		require.Equal(t, schemas.StagePreprocess, r.Stage)
		require.Equal(t, "ok", r.Outcome)
		got = append(got, r.JobID)
	}
	require.ElementsMatch(t, ids, got)
}
