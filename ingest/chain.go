package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// resolveChain checks a chained request (req.Steps) and resolves each step's model: an
// invalid chain is refused with a 422 whose fields name the step ("steps.1.task"). The
// first step becomes the job's Task, Model, Version and Params, so every rule that
// reads them (scopes, limits, the input checks) applies to the chain's first step.
func (s *Service) resolveChain(req *SubmitRequest) *Problem {
	if errs := schemas.ValidateSteps(req.Steps); len(errs) > 0 {
		return problem(422, "invalid_chain", "the chain of steps is invalid: "+fieldsDetail(errs), errs...)
	}
	first := req.Steps[0]
	switch {
	case req.Task != "" && req.Task != first.Task:
		return problem(422, "invalid_chain", fmt.Sprintf("task %q differs from the first step's %q: leave task out when sending steps", req.Task, first.Task),
			FieldProblem{Field: "task", Constraint: "const", Message: "must equal steps.0.task or be left out"})
	case req.Model != "" || req.Version != "" || len(req.Params) > 0:
		return problem(422, "invalid_chain", "model, version and params belong in each step when sending steps",
			FieldProblem{Field: "params", Constraint: "not", Message: "set them in steps.<i> instead"})
	}
	chain := make([]schemas.ChainStep, len(req.Steps))
	for i, st := range req.Steps {
		spec, err := s.catalog.Resolve(st.Task, st.Model, st.Version, mathrand.Float64())
		if err != nil {
			return problem(422, "invalid_chain", fmt.Sprintf("step %d: %v: GET /v1/models lists what is available", i, err),
				FieldProblem{Field: "steps." + strconv.Itoa(i) + ".model", Constraint: "enum", Message: "no model serves this task/model/version"})
		}
		chain[i] = schemas.ChainStep{Task: st.Task, Model: spec.Name, ModelVersion: spec.Version, Params: st.Params}
	}
	req.Task, req.Model, req.Version, req.Params = first.Task, chain[0].Model, chain[0].ModelVersion, first.Params
	req.chain = chain
	return nil
}

// enqueueChain creates the record of a chained job and queues its first step that the
// result cache cannot answer; when the cache answers every step the job succeeds here.
// It is enqueue's tail for chains (the input is stored and indexed already).
func (s *Service) enqueueChain(ctx context.Context, req *SubmitRequest, rec *schemas.JobRecord) (*schemas.JobRecord, bool, error) {
	next := 0
	if s.cache != nil && rec.Style == nil { // a style image is not part of SkipSteps' keys
		stat := func(ctx context.Context, key string) error { _, err := s.blobs.Stat(ctx, key); return err }
		next = s.cache.SkipSteps(ctx, stat, rec.Tenant, rec.Chain, 0, rec.Input, time.Now().UTC())
	}
	n := len(rec.Chain)
	if next == n {
		now := time.Now().UTC()
		rec.Status, rec.Stage, rec.Percent, rec.ChainStep = schemas.StatusSucceeded, schemas.StageStore, 100, n-1
		rec.CacheHit, rec.Results = true, schemas.ChainResults(rec.Chain)
		rec.StartedAt, rec.FinishedAt = now, now
	} else {
		rec.ChainStep, rec.Percent = next, schemas.ChainPercent(next, n, 0)
		if s.depth != nil {
			if d, err := s.depth(ctx, req.Tier); err == nil {
				rec.QueuePosition = d + 1
			}
		}
	}
	if err := s.jobs.Create(ctx, rec); err != nil {
		return s.settleCreate(ctx, nil, rec.ID, err)
	}
	var outs []streams.Output
	for j := 0; j < next; j++ {
		outs = append(outs, s.stepEventOutput(rec, j))
	}
	if next == n {
		if len(outs) > 0 {
			if err := s.pub.Publish(ctx, outs...); err != nil {
				s.log.WithError(err).WithField("job_id", rec.ID).Warn("could not publish the step events")
			}
		}
		s.publishResult(ctx, rec)
		return rec, false, nil
	}
	st := rec.Chain[next]
	input := rec.Input
	if next > 0 {
		input, _ = schemas.StepInput(rec.Chain, next)
	}
	ev := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: rec.ID, Tenant: rec.Tenant, User: rec.User,
		Tier: rec.Tier, Task: st.Task, Model: st.Model, ModelVersion: st.ModelVersion,
		Params: st.Params, Input: input, Style: rec.Style, TraceParent: req.TraceParent, SubmittedAt: rec.SubmittedAt,
		Chain: rec.Chain, ChainStep: next,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return nil, false, fmt.Errorf("encode request: %w", err)
	}
	h := map[string][]string{"traceparent": {req.TraceParent}, "Studio-Job-Id": {rec.ID}}
	if req.RequestID != "" {
		h["Studio-Request-Id"] = []string{req.RequestID}
	}
	msgID := rec.ID + ":requested" // as processors' stepMsgID names step 0's request
	if next > 0 {
		msgID = rec.ID + ":step" + strconv.Itoa(next) + ":requested"
	}
	outs = append(outs, streams.Output{Subject: schemas.RequestSubject(rec.Tier, st.Task), MsgID: msgID, Data: data, Header: h})
	if err := s.pub.Publish(ctx, outs...); err != nil {
		_, _ = s.jobs.Update(context.WithoutCancel(ctx), rec.ID, func(r *schemas.JobRecord) error {
			r.Status = schemas.StatusFailed
			r.Error = &schemas.JobError{Code: "not_queued", Message: "the job could not be queued; submit it again", Stage: schemas.StageIngest}
			return nil
		})
		return nil, false, fmt.Errorf("queue job: %w", err)
	}
	s.log.WithFields(logrus.Fields{"job_id": rec.ID, "trace_id": rec.TraceID, "request_id": req.RequestID, "tenant": rec.Tenant, "user_id": rec.User,
		"task": rec.Task, "steps": n, "first_step": next, "stage": "ingest"}).Info("chained job queued")
	return rec, false, nil
}

// stepEventOutput is the StepEvent of step j of rec's chain, answered at ingest.
func (s *Service) stepEventOutput(rec *schemas.JobRecord, j int) streams.Output {
	st, n := rec.Chain[j], len(rec.Chain)
	data, _ := json.Marshal(schemas.StepEvent{
		Schema: schemas.SchemaJobStep, JobID: rec.ID, Tenant: rec.Tenant, User: rec.User,
		Step: j, Steps: n, Task: st.Task, Model: st.Model, ModelVersion: st.ModelVersion,
		Results: st.Results, CacheHit: st.CacheHit, Percent: schemas.ChainPercent(j+1, n, 0), FinishedAt: st.FinishedAt,
	})
	return streams.Output{Subject: schemas.StepSubject(rec.Tenant, st.Task), MsgID: rec.ID + ":step" + strconv.Itoa(j) + ":done", Data: data}
}
