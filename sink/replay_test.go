package sink_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestReplayResultsAreWrittenAndErasedOnEveryEngine(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			cfg := e.config(t)
			srv := streamstest.Start(t)
			now := time.Now().UTC().Truncate(time.Second).Add(-time.Minute) // inside the report window, which ends at the current second (exclusive)
			one, cer := 1.0, 0.25
			yes := false
			results := []schemas.ReplayResult{
				{Schema: schemas.SchemaReplayResult, ReplayID: "r1", JobID: "job-a", ShadowJobID: "shadow-a", Tenant: "acme", User: "ann",
					Task: schemas.TaskRemoveBackground, Model: "isnet", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayCompared,
					Output: "cutout", IoU: &one, OriginalMS: 120, ShadowMS: 95.5, SubmittedAt: now.Add(-time.Hour), ReplayedAt: now},
				{Schema: schemas.SchemaReplayResult, ReplayID: "r1", JobID: "job-b", Tenant: "acme", User: "bob",
					Task: schemas.TaskOCR, Model: "ppocr", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayCompared,
					Output: "text", TextEqual: &yes, CER: &cer, OriginalMS: 300, ShadowMS: 310, SubmittedAt: now.Add(-time.Hour), ReplayedAt: now},
				{Schema: schemas.SchemaReplayResult, ReplayID: "r1", JobID: "job-c", Tenant: "acme", User: "ann",
					Task: schemas.TaskRemoveBackground, Model: "isnet", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayFailed,
					Error: "the shadow run failed: model_error", SubmittedAt: now.Add(-time.Hour), ReplayedAt: now},
			}
			for _, r := range results {
				publish(t, srv, jsonOutput(t, schemas.SubjectReplayResults, "replay:"+r.JobID, r))
			}
			s := startSink(t, srv, cfg)
			waitWritten(t, s, uint64(len(results)), 60*time.Second)
			require.Equal(t, uint64(3), s.Stats().Rows["replay_results"], "%+v", s.Stats())

			rows := e.rows(t, cfg, "SELECT id, user_id, outcome, output, iou, isNaN(psnr), text_equal, cer, original_ms, shadow_ms, shadow_version FROM replay_results ORDER BY id")
			require.Len(t, rows, 3)
			require.Equal(t, "r1:job-a", rows[0][0])
			require.InDelta(t, 1.0, toFloat(rows[0][4]), 1e-12)
			require.Equal(t, "1", fmt.Sprint(rows[0][5]), "a metric that does not apply is nan")
			require.Equal(t, "255", fmt.Sprint(rows[0][6]), "no text compared")
			require.InDelta(t, 95.5, toFloat(rows[0][9]), 1e-9)
			require.Equal(t, "0", fmt.Sprint(rows[1][6]))
			require.InDelta(t, 0.25, toFloat(rows[1][7]), 1e-12)
			require.Equal(t, schemas.ReplayFailed, rows[2][2])
			require.True(t, math.IsNaN(toFloat(rows[2][4])))

			// The dashboard's business report shows the replay per task.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b, err := sink.Business(ctx, cfg, "24h")
			require.NoError(t, err)
			require.Len(t, b.Replays, 2)
			byTask := map[string]schemas.ReplayStats{}
			for _, r := range b.Replays {
				byTask[r.Task] = r
			}
			rb := byTask[string(schemas.TaskRemoveBackground)]
			require.Equal(t, schemas.ReplayStats{ReplayID: "r1", Task: "remove-background", Model: "isnet", Original: "1", Shadow: "2",
				Requests: 2, Compared: 1, Failed: 1, MeanIoU: &one, MinIoU: &one, OriginalP50MS: 120, ShadowP50MS: 95.5}, rb)
			ocr := byTask[string(schemas.TaskOCR)]
			require.Nil(t, ocr.MeanIoU, "no IoU for ocr")
			require.Nil(t, ocr.MeanPSNR)
			require.Equal(t, 0.0, *ocr.TextEqualShare)
			require.InDelta(t, 0.25, *ocr.MeanCER, 1e-12)

			// ann's erasure deletes her replay rows; bob's stay.
			publish(t, srv, jsonOutput(t, schemas.SubjectErasure, "erasure:e1", schemas.ErasureRequest{
				Schema: schemas.SchemaErasure, ID: "e1", Tenant: "acme", User: "ann", RequestedAt: now}))
			streamstest.Eventually(t, 60*time.Second, func() bool { return s.Stats().Erasures == 1 }, "the erasure is applied")
			streamstest.Eventually(t, 60*time.Second, func() bool {
				return fmt.Sprint(e.rows(t, cfg, "SELECT count() FROM replay_results WHERE user_id = 'ann'")[0][0]) == "0"
			}, "ann's replay rows are erased")
			require.Equal(t, "1", fmt.Sprint(e.rows(t, cfg, "SELECT count() FROM replay_results")[0][0]))
		})
	}
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	}
	var f float64
	_, _ = fmt.Sscan(fmt.Sprint(v), &f)
	return f
}
