package app

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// stepProgress publishes the denoising steps of generate jobs the way every progress
// change is published: on the job record (KV watch -> WebSocket, SSE, GET). The
// percent moves from the inference stage's share to just below postprocess's, and a
// job found cancelled or failed stops the generation between steps. A record that
// cannot be written costs one progress update, not the job.
func stepProgress(store *jobs.Store, log logrus.FieldLogger) inference.Progress {
	lo := processors.StagePercent(schemas.StageInference)
	hi := processors.StagePercent(schemas.StagePostprocess) - 1
	return func(ctx context.Context, ev *schemas.JobEvent, step, steps int) error {
		ended := false
		_, err := store.Update(ctx, ev.JobID, func(r *schemas.JobRecord) error {
			if ended = r.Status.Final(); ended {
				return streams.ErrNoChange
			}
			r.Step, r.Steps = step, steps
			r.Percent = max(r.Percent, lo+(hi-lo)*step/steps)
			return nil
		})
		if ended {
			return inference.ErrJobEnded
		}
		if err != nil && ctx.Err() == nil {
			log.WithError(err).WithField("job_id", ev.JobID).Warn("could not record a denoising step")
		}
		return nil
	}
}
