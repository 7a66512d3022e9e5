package processors

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// A chained job (JobEvent.Chain) runs the table's stages once per step: the event's
// Task, Model, Params and Input are the current step's, ChainStep is the cursor, and
// the store stage, which promotes the step's outputs under their step names, hands the
// job to the next step by publishing a new request on studio.requests. Only the last
// step's store marks the job succeeded and publishes its one result event; every
// finished step also gets a StepEvent on studio.steps.<tenant>.<task>.

// stepDone reports whether ev belongs to a step of a chain that the record already
// shows as done.
func stepDone(r *schemas.JobRecord, ev *schemas.JobEvent) bool {
	return len(ev.Chain) > 0 && ev.ChainStep < len(r.Chain) && r.Chain[ev.ChainStep].Status == schemas.StatusSucceeded
}

// eventPercent is the job's progress at stage progress p of ev's step.
func eventPercent(ev *schemas.JobEvent, p int) int {
	return schemas.ChainPercent(ev.ChainStep, len(ev.Chain), p)
}

// stepMsgID is the Nats-Msg-Id of what ev's stage publishes: "<job>:<what>" for a
// one-step job and a chain's first step (as before chains existed), and
// "<job>:step<i>:<what>" for step i > 0, so the stream's de-duplication keeps every step's
// messages and still drops a redelivered run's.
func stepMsgID(ev *schemas.JobEvent, what string) string {
	id := ev.JobID
	if ev.ChainStep > 0 {
		id += ":step" + strconv.Itoa(ev.ChainStep)
	}
	if what != "" {
		id += ":" + what
	}
	return id
}

// chainOutputs are what the store stage publishes for a chained job beyond its result:
// a StepEvent for each step done by this run (the step itself and the following steps
// the cache answered), and, unless every step is done, the request of the next step.
func chainOutputs(ev *schemas.JobEvent, rec *schemas.JobRecord) ([]streams.Output, error) {
	n := len(ev.Chain)
	next := schemas.NextStep(ev.Chain)
	var outs []streams.Output
	for j := ev.ChainStep; j < next; j++ {
		st := ev.Chain[j]
		se := schemas.StepEvent{
			Schema: schemas.SchemaJobStep, JobID: ev.JobID, Tenant: ev.Tenant, User: ev.User,
			Step: j, Steps: n, Task: st.Task, Model: st.Model, ModelVersion: st.ModelVersion,
			Results: st.Results, CacheHit: st.CacheHit, Percent: schemas.ChainPercent(j+1, n, 0),
			TraceParent: ev.TraceParent, FinishedAt: st.FinishedAt,
		}
		if se.FinishedAt.IsZero() {
			se.FinishedAt = time.Now().UTC()
		}
		data, err := json.Marshal(se)
		if err != nil {
			return nil, fmt.Errorf("encode step event of %s: %w", ev.JobID, err)
		}
		outs = append(outs, streams.Output{
			Subject: schemas.StepSubject(ev.Tenant, st.Task),
			MsgID:   ev.JobID + ":step" + strconv.Itoa(j) + ":done",
			Data:    data, Header: headers(ev),
		})
	}
	if next >= n || rec.Status.Final() {
		return outs, nil
	}
	input, ok := schemas.StepInput(ev.Chain, next)
	if !ok {
		return nil, Permanent(schemas.StageStore, CodeBadEvent, "step %d of the chain has no image output for step %d", next-1, next)
	}
	st := ev.Chain[next]
	req := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: ev.JobID, Tenant: ev.Tenant, User: ev.User, Tier: ev.Tier,
		Task: st.Task, Model: st.Model, ModelVersion: st.ModelVersion, Params: st.Params, Input: input, Style: ev.Style,
		TraceParent: ev.TraceParent, SubmittedAt: ev.SubmittedAt, Chain: ev.Chain, ChainStep: next,
	}
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode step %d of %s: %w", next, ev.JobID, err)
	}
	return append(outs, streams.Output{
		Subject: schemas.RequestSubject(ev.Tier, st.Task),
		MsgID:   stepMsgID(&req, "requested"),
		Data:    data, Header: headers(ev),
	}), nil
}

// keepDurations is chain (from the event) with the stage times of the steps before
// step i taken from the record's chain, and step i's from the record's stages.
func keepDurations(chain, recorded []schemas.ChainStep, i int, stages map[schemas.Stage]*schemas.StageTiming) []schemas.ChainStep {
	out := slices.Clone(chain)
	for j := 0; j < i && j < len(out) && j < len(recorded); j++ {
		out[j].DurationsMS = recorded[j].DurationsMS
	}
	if i < len(out) && !out[i].CacheHit {
		d := make(map[schemas.Stage]float64, len(stages))
		for s, t := range stages {
			d[s] = t.DurationMS
		}
		out[i].DurationsMS = d
	}
	return out
}
