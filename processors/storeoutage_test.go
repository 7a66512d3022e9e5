package processors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// waitingStep runs until its ctx ends, as a stage does while it waits for its object
// store, and returns what the store would: an error wrapping ctx's, and
// blob.ErrUnavailable when the store was down.
type waitingStep struct {
	stage schemas.Stage
	down  bool
}

func (s waitingStep) Stage() schemas.Stage { return s.stage }
func (s waitingStep) Process(ctx context.Context, evs []*schemas.JobEvent) []error {
	<-ctx.Done()
	err := fmt.Errorf("read input: %w", ctx.Err())
	if s.down {
		err = fmt.Errorf("read input: s3: get %q: %w after 4 tries in 1s: %w", "k", blob.ErrUnavailable, ctx.Err())
	}
	errs := make([]error, len(evs))
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// TestAWaitForAnUnavailableStoreIsNotAStageDeadline: a stage that runs past its
// per-image deadline fails the job for good (stage_deadline_exceeded), but one that ran
// past it waiting for an unavailable object store gives the message back for
// redelivery: the store's outage is not the input's fault.
func TestAWaitForAnUnavailableStoreIsNotAStageDeadline(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	store, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	for _, down := range []bool{false, true} {
		t.Run(fmt.Sprintf("store down %v", down), func(t *testing.T) {
			id := fmt.Sprintf("outage-%d", time.Now().UnixNano())
			rec := &schemas.JobRecord{ID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskUpscale,
				Status: schemas.StatusRunning, Stage: schemas.StagePreprocess, SubmittedAt: time.Now().UTC()}
			require.NoError(t, store.Create(ctx, rec))
			h := processors.NewHandler(waitingStep{stage: schemas.StageInference, down: down}, store, streams.JSPublisher{JS: s.JS}, "test", quietLog())
			h.Deadline = 200 * time.Millisecond
			ev, _ := json.Marshal(schemas.JobEvent{Schema: schemas.SchemaJobPreprocessed, JobID: id, Tenant: "local", User: "u", Tier: schemas.TierNormal, Task: schemas.TaskUpscale})
			res := h.Handle(ctx, []*streams.Msg{{Subject: "studio.preprocessed.normal.x", Data: ev, Delivered: 1, Received: time.Now()}})
			require.Len(t, res, 1)
			require.Error(t, res[0].Err)
			if down {
				require.False(t, streams.IsPermanent(res[0].Err), "a wait for the store failed the job for good: %v", res[0].Err)
				require.ErrorIs(t, res[0].Err, blob.ErrUnavailable)
				return
			}
			require.True(t, streams.IsPermanent(res[0].Err), "slow work past the deadline is permanent: %v", res[0].Err)
			require.Contains(t, res[0].Err.Error(), processors.CodeStageDeadline)
		})
	}
}
