package replay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// ShadowTier is the lane shadow runs travel on: the lowest tier's subjects, which the
// stage runners serve last (batch work shares it). A tier of its own would add a
// durable consumer per stage and a queue for autoscaling to watch, for work nobody
// waits on; the Shadow mark on the event is what keeps it apart from user work.
var ShadowTier = schemas.Tiers[len(schemas.Tiers)-1]

// DefaultWait bounds how long Run waits for the shadow runs.
const DefaultWait = 10 * time.Minute

// Plan is one replay: the window of past requests and the model version they are
// run on.
type Plan struct {
	Window Window
	// To is the shadow's model version; Target checks it against a catalog.
	To models.Spec
	// ID names the replay in its rows (NewID when empty).
	ID string
	// Wait bounds the wait for the shadow runs (DefaultWait when 0); a run still
	// unfinished then is cancelled and reported as failed.
	Wait time.Duration
}

// Report is what a replay found.
type Report struct {
	ID        string                 `json:"replay_id"`
	Rows      []schemas.ReplayResult `json:"rows"`
	Skipped   Skipped                `json:"skipped"`
	Summaries []Summary              `json:"-"`
}

// Runner replays past requests on the shadow lane. It needs no running ingest: it
// writes each shadow job's record and request itself, and the stage workers of a
// running studio do the rest. Safe for concurrent use; Run blocks until every shadow
// run ended or Plan.Wait passed.
type Runner struct {
	JS    jetstream.JetStream
	Jobs  *jobs.Store
	Blobs blob.Store
	// Poll is how often the shadow records are read while waiting (default 200ms).
	Poll time.Duration
}

// Target resolves "model@version" for task against cat.
func Target(cat *models.Catalog, task schemas.Task, to string) (models.Spec, error) {
	name, version, ok := strings.Cut(to, "@")
	if !ok || name == "" || version == "" {
		return models.Spec{}, fmt.Errorf("replay: --to %q must be model@version, e.g. isnet@quint8", to)
	}
	spec, err := cat.Get(name, version)
	if err != nil {
		return models.Spec{}, fmt.Errorf("replay: %s is not in the catalog (studio models lists the versions): %w", to, err)
	}
	if spec.Task != task {
		return models.Spec{}, fmt.Errorf("replay: %s serves %s, not %s", to, spec.Task, task)
	}
	return spec, nil
}

// NewID returns a fresh replay id ("rp-" and 12 hex digits).
func NewID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "rp-" + hex.EncodeToString(b)
}

// Run reads p's window, queues one shadow job per selected request on the shadow lane
// (the original's input and parameters, p.To's model and version), waits for them,
// compares each shadow output with the original's, and publishes one ReplayResult per
// request on schemas.SubjectReplayResults. The rows are returned in window order.
func (r *Runner) Run(ctx context.Context, p Plan) (*Report, error) {
	if p.To.Name == "" || p.To.Version == "" {
		return nil, errors.New("replay: the plan names no model version (--to model@version)")
	}
	if p.To.Task != p.Window.Task {
		return nil, fmt.Errorf("replay: %s serves %s, not %s", p.To.ID(), p.To.Task, p.Window.Task)
	}
	if p.ID == "" {
		p.ID = NewID()
	}
	if p.Wait <= 0 {
		p.Wait = DefaultWait
	}
	reqs, skipped, err := ReadWindow(ctx, r.JS, r.Jobs, p.Window)
	if err != nil {
		return nil, err
	}
	rep := &Report{ID: p.ID, Skipped: skipped}
	shadows := make([]string, len(reqs))
	for i, req := range reqs {
		id, err := r.queue(ctx, p, req)
		if err != nil {
			return nil, err
		}
		shadows[i] = id
	}
	finals, err := r.await(ctx, shadows, p.Wait)
	if err != nil {
		return nil, err
	}
	for i, req := range reqs {
		row, err := r.row(ctx, p.ID, req, finals[i])
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(row)
		if err != nil {
			return nil, fmt.Errorf("replay: encode result of %s: %w", req.Original.ID, err)
		}
		if _, err := r.JS.Publish(ctx, schemas.SubjectReplayResults, data, jetstream.WithMsgID(p.ID+":"+req.Original.ID)); err != nil {
			return nil, fmt.Errorf("replay: publish the result of %s on %s: %w", req.Original.ID, schemas.SubjectReplayResults, err)
		}
		rep.Rows = append(rep.Rows, row)
	}
	rep.Summaries = Summarize(rep.Rows)
	return rep, nil
}

// queue writes the shadow job's record (the original's tenant and user, so erasure
// finds it) and publishes its request on the shadow lane.
func (r *Runner) queue(ctx context.Context, p Plan, req Request) (string, error) {
	orig := req.Original
	id := "shadow-" + strings.TrimPrefix(p.ID, "rp-") + "-" + orig.ID
	now := time.Now().UTC()
	rec := &schemas.JobRecord{
		ID: id, Tenant: orig.Tenant, User: orig.User, Tier: ShadowTier, Task: orig.Task,
		Model: p.To.Name, ModelVersion: p.To.Version, Params: req.Event.Params,
		Status: schemas.StatusQueued, Stage: schemas.StageIngest, Input: req.Event.Input, Style: req.Event.Style,
		Shadow: true, ShadowOf: orig.ID, SubmittedAt: now,
	}
	if err := r.Jobs.Create(ctx, rec); err != nil && !errors.Is(err, jobs.ErrExists) {
		return "", fmt.Errorf("replay: record shadow job of %s: %w", orig.ID, err)
	}
	ev := schemas.JobEvent{
		Schema: schemas.SchemaJobRequested, JobID: id, Tenant: orig.Tenant, User: orig.User,
		Tier: ShadowTier, Task: orig.Task, Model: p.To.Name, ModelVersion: p.To.Version,
		Params: req.Event.Params, Input: req.Event.Input, Style: req.Event.Style, SubmittedAt: now, Shadow: true,
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("replay: encode shadow request of %s: %w", orig.ID, err)
	}
	msg := &nats.Msg{Subject: schemas.RequestSubject(ShadowTier, orig.Task), Data: data, Header: nats.Header{"Studio-Job-Id": {id}}}
	if _, err := r.JS.PublishMsg(ctx, msg, jetstream.WithMsgID(id+":requested")); err != nil {
		return "", fmt.Errorf("replay: queue shadow job of %s: %w", orig.ID, err)
	}
	return id, nil
}

// await polls the shadow records until each is final or wait passed; a run still
// unfinished then is cancelled, so the stages skip it.
func (r *Runner) await(ctx context.Context, ids []string, wait time.Duration) ([]*schemas.JobRecord, error) {
	poll := r.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	deadline := time.Now().Add(wait)
	out := make([]*schemas.JobRecord, len(ids))
	for {
		pending := 0
		for i, id := range ids {
			if out[i] != nil && out[i].Status.Final() {
				continue
			}
			rec, err := r.Jobs.Get(ctx, id)
			switch {
			case errors.Is(err, jobs.ErrNotFound):
				out[i] = &schemas.JobRecord{ID: id, Status: schemas.StatusFailed, Error: &schemas.JobError{Code: "gone", Message: "the shadow job's record is gone (expired or erased)"}}
				continue
			case err != nil:
				return nil, fmt.Errorf("replay: read shadow job %s: %w", id, err)
			}
			out[i] = rec
			if !rec.Status.Final() {
				pending++
			}
		}
		if pending == 0 {
			return out, nil
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
	for i, rec := range out {
		if rec.Status.Final() {
			continue
		}
		upd, err := r.Jobs.Update(ctx, rec.ID, func(j *schemas.JobRecord) error {
			if !j.Status.Final() {
				j.Status = schemas.StatusCancelled
				j.Error = &schemas.JobError{Code: "replay_timeout", Message: fmt.Sprintf("the shadow run did not finish within %s", wait)}
				j.FinishedAt = time.Now().UTC()
			}
			return nil
		})
		if err == nil {
			out[i] = upd
		}
	}
	return out, nil
}

// row compares one request's outputs: the original's and, when it succeeded, the
// shadow's, read from the object store.
func (r *Runner) row(ctx context.Context, replayID string, req Request, shadow *schemas.JobRecord) (schemas.ReplayResult, error) {
	now := time.Now()
	if shadow.Status != schemas.StatusSucceeded {
		return NewResult(replayID, req, shadow, nil, nil, now), nil
	}
	orig, err := r.outputs(ctx, req.Original.Results)
	if err != nil {
		row := NewResult(replayID, req, nil, nil, nil, now)
		row.ShadowJobID, row.ShadowVersion = shadow.ID, shadow.ModelVersion
		row.Error = "the original's results could not be read: " + err.Error()
		return row, nil
	}
	out, err := r.outputs(ctx, shadow.Results)
	if err != nil {
		return schemas.ReplayResult{}, err
	}
	return NewResult(replayID, req, shadow, orig, out, now), nil
}

// outputs reads the objects of results by name.
func (r *Runner) outputs(ctx context.Context, results map[string]schemas.ObjectRef) (map[string][]byte, error) {
	out := make(map[string][]byte, len(results))
	for name, ref := range results {
		rc, _, err := r.Blobs.Get(ctx, ref.Key)
		if err != nil {
			return nil, fmt.Errorf("read result %s (%s): %w", name, ref.Key, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read result %s (%s): %w", name, ref.Key, err)
		}
		out[name] = b
	}
	return out, nil
}
