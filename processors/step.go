package processors

import (
	"context"

	"github.com/creativeai-studio/studio/schemas"
)

// Step is one stage's transformation. Process receives a batch of events (usually one)
// and updates each in place: it adds artifacts and image information. It returns one
// error per event (nil for success); an error wrapping *schemas.JobError fails the job,
// any other error is retried. Process must be safe to call again for the same event
// (redelivery) and from several goroutines.
type Step interface {
	Stage() schemas.Stage
	Process(ctx context.Context, batch []*schemas.JobEvent) []error
}

// nextSchema maps a stage to the schema of the event it emits.
func nextSchema(s schemas.Stage) string {
	switch s {
	case schemas.StagePreprocess:
		return schemas.SchemaJobPreprocessed
	case schemas.StageInference:
		return schemas.SchemaJobInferred
	case schemas.StagePostprocess:
		return schemas.SchemaJobPostprocessed
	}
	return schemas.SchemaJobResult
}

// nextSubject maps a stage to the subject its output goes to.
func nextSubject(s schemas.Stage, ev *schemas.JobEvent) string {
	switch s {
	case schemas.StagePreprocess:
		return schemas.PreprocessedSubject(ev.Tier, ev.Model)
	case schemas.StageInference:
		return schemas.InferredSubject(ev.Tier, ev.Task)
	case schemas.StagePostprocess:
		return schemas.PostprocessedSubject(ev.Tier, ev.Task)
	}
	return schemas.ResultSubject(ev.Tenant, ev.Task)
}

// nextStage is the stage after s, used for progress reporting.
func nextStage(s schemas.Stage) schemas.Stage {
	for i, st := range schemas.PipelineStages {
		if st == s && i+1 < len(schemas.PipelineStages) {
			return schemas.PipelineStages[i+1]
		}
	}
	return ""
}
