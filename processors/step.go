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

// nextSchema is the schema of the event stage s emits (Stages' NextSchema).
func nextSchema(s schemas.Stage) string {
	st, err := Lookup(s)
	if err != nil {
		return ""
	}
	return st.NextSchema
}

// nextSubject is the subject stage s sends ev's output to (Stages' Next).
func nextSubject(s schemas.Stage, ev *schemas.JobEvent) string {
	st, err := Lookup(s)
	if err != nil {
		return ""
	}
	return st.Next(ev)
}

// nextStage is the row after s in Stages, used for progress reporting and message ids;
// "" after the last stage.
func nextStage(s schemas.Stage) schemas.Stage {
	for i, st := range Stages {
		if st.Name == s && i+1 < len(Stages) {
			return Stages[i+1].Name
		}
	}
	return ""
}
