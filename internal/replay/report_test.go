package replay_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

func record(id, version string, st schemas.Status, processing time.Duration) *schemas.JobRecord {
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	return &schemas.JobRecord{ID: id, Tenant: "acme", User: "ann", Task: schemas.TaskRemoveBackground, Model: "isnet",
		ModelVersion: version, Status: st, SubmittedAt: start.Add(-time.Second), StartedAt: start, FinishedAt: start.Add(processing)}
}

func TestNewResultComparesTheShadowWithTheOriginal(t *testing.T) {
	cut := pngBytes(t, disc(30, 30, 15, 15, 8))
	other := pngBytes(t, disc(30, 30, 5, 5, 3))
	req := replay.Request{Original: record("job-a", "1", schemas.StatusSucceeded, 200*time.Millisecond)}
	now := time.Now()
	tests := []struct {
		name    string
		shadow  *schemas.JobRecord
		out     map[string][]byte
		outcome string
		iou     float64
		err     string
	}{
		{"the same output has IoU 1", record("shadow-a", "2", schemas.StatusSucceeded, 150*time.Millisecond), map[string][]byte{"cutout": cut}, schemas.ReplayCompared, 1, ""},
		{"another mask has a lower IoU", record("shadow-b", "2", schemas.StatusSucceeded, 150*time.Millisecond), map[string][]byte{"cutout": other}, schemas.ReplayCompared, -1, ""},
		{"a failed shadow run says so", func() *schemas.JobRecord {
			r := record("shadow-c", "2", schemas.StatusFailed, 0)
			r.Error = &schemas.JobError{Code: "model_error"}
			return r
		}(), nil, schemas.ReplayFailed, 0, "the shadow run ended failed: model_error"},
		{"a shadow run never queued says so", nil, nil, schemas.ReplayFailed, 0, "not queued"},
		{"outputs that cannot be compared say why", record("shadow-d", "2", schemas.StatusSucceeded, time.Millisecond), map[string][]byte{"mask": cut}, schemas.ReplayFailed, 0, "none of the original's results"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replay.NewResult("r1", req, tt.shadow, map[string][]byte{"cutout": cut}, tt.out, now)
			require.NoError(t, r.Validate())
			require.Equal(t, tt.outcome, r.Outcome)
			require.Equal(t, "job-a", r.JobID)
			require.Equal(t, "1", r.OriginalVersion)
			require.Equal(t, 200.0, r.OriginalMS)
			require.Contains(t, r.Error, tt.err)
			switch {
			case tt.outcome == schemas.ReplayFailed:
				require.Nil(t, r.IoU)
			case tt.iou >= 0:
				require.Equal(t, tt.iou, *r.IoU)
				require.Equal(t, "2", r.ShadowVersion)
				require.Equal(t, 150.0, r.ShadowMS)
			default:
				require.Less(t, *r.IoU, 0.5)
			}
		})
	}
}

func TestSummaryTable(t *testing.T) {
	one, half := 1.0, 0.5
	rows := []schemas.ReplayResult{
		{Task: schemas.TaskRemoveBackground, Model: "isnet", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayCompared, IoU: &one, OriginalMS: 100, ShadowMS: 50},
		{Task: schemas.TaskRemoveBackground, Model: "isnet", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayCompared, IoU: &half, OriginalMS: 300, ShadowMS: 150},
		{Task: schemas.TaskRemoveBackground, Model: "isnet", OriginalVersion: "1", ShadowVersion: "2", Outcome: schemas.ReplayFailed},
	}
	sums := replay.Summarize(rows)
	require.Len(t, sums, 1)
	s := sums[0]
	require.Equal(t, 3, s.Requests)
	require.Equal(t, 2, s.Compared)
	require.Equal(t, 1, s.Failed)
	require.Equal(t, 0.75, s.MeanIoU)
	require.Equal(t, 0.5, s.MinIoU)
	require.Equal(t, 200.0, s.OriginalP50MS)
	require.Equal(t, 100.0, s.ShadowP50MS)
	require.Equal(t, 0.5, s.LatencyRatio)

	var buf bytes.Buffer
	require.NoError(t, replay.WriteTable(&buf, sums))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "IOU (MEAN/MIN)")
	for _, want := range []string{"remove-background", "isnet", "0.7500/0.5000", "200.0/100.0", "0.50x"} {
		require.Contains(t, lines[1], want)
	}
	require.Contains(t, lines[1], " - ", "PSNR does not apply to remove-background")
}
