package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// ActiveJobs caps how many jobs each user has queued or running. The KV bucket "active"
// holds one ActiveSet per user ("<tenant>.<user>"): ingest adds the job id before
// storing anything (Acquire), and the id leaves the set when the job reaches a final
// state (Release, or ReleaseFinished, which handles the result stream). Both are compare-and-swap
// updates of the user's key, so the cap holds exactly across replicas, and both are
// idempotent per job id, so redeliveries are harmless. Safe for concurrent use.
type ActiveJobs struct {
	kv   jetstream.KeyValue
	jobs *jobs.Store
	now  func() time.Time
	// grace is how long a slot may exist without a job record before it counts as
	// leaked (ingest takes the slot, then creates the record).
	grace time.Duration
}

// ActiveConsumer is the durable consumer on RESULTS through which ReleaseFinished
// releases slots.
const ActiveConsumer = "active-jobs"

// StageActiveJobs names the slot release in logs, metrics and its DLQ subject.
const StageActiveJobs schemas.Stage = "active-jobs"

// OpenActiveJobs opens the active bucket (and the jobs bucket, to find leaked slots).
func OpenActiveJobs(ctx context.Context, js jetstream.JetStream) (*ActiveJobs, error) {
	kv, err := streams.BindKV(ctx, js, BucketActive)
	if err != nil {
		return nil, err
	}
	jobStore, err := jobs.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	return &ActiveJobs{kv: kv, jobs: jobStore, now: time.Now, grace: 5 * time.Minute}, nil
}

// Acquire takes one of limit slots of a user for jobID (limit 0: no cap, the job is
// still tracked). At the cap it first drops leaked slots, those whose job is final or
// whose record never appeared, and then, if still full, returns a *Exceeded
// (errors.Is ErrTooManyActive) saying how many jobs run. Acquiring a slot the job
// already holds succeeds.
func (a *ActiveJobs) Acquire(ctx context.Context, tenant, user, jobID string, limit int) error {
	key, err := schemas.UserKey(tenant, user)
	if err != nil {
		return err
	}
	checked := map[string]bool{}
	_, err = streams.UpdateJSON(ctx, a.kv, key, func(set *ActiveSet, _ bool) error {
		added, err := set.Add(jobID, a.now(), limit)
		if err == nil && !added {
			return streams.ErrNoChange
		}
		if errors.Is(err, ErrTooManyActive) {
			// Reconcile once per job id and call, then try again.
			dropped := false
			for _, id := range set.IDs() {
				if checked[id] {
					continue
				}
				checked[id] = true
				if leaked, lerr := a.leaked(ctx, id, set.Jobs[id]); lerr != nil {
					return lerr
				} else if leaked {
					set.Remove(id)
					dropped = true
				}
			}
			if dropped {
				_, err = set.Add(jobID, a.now(), limit)
			}
		}
		return err
	})
	return err
}

// leaked reports whether a slot no longer stands for a live job.
func (a *ActiveJobs) leaked(ctx context.Context, jobID string, since time.Time) (bool, error) {
	rec, err := a.jobs.Get(ctx, jobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return a.now().Sub(since) > a.grace, nil
	}
	if err != nil {
		return false, err
	}
	return rec.Status.Final(), nil
}

// Release frees jobID's slot and reports whether it held one. Releasing twice, or a
// job that never held a slot, is not an error.
func (a *ActiveJobs) Release(ctx context.Context, tenant, user, jobID string) (bool, error) {
	key, err := schemas.UserKey(tenant, user)
	if err != nil {
		return false, err
	}
	released := false
	_, err = streams.UpdateJSON(ctx, a.kv, key, func(set *ActiveSet, exists bool) error {
		released = exists && set.Remove(jobID)
		if !released {
			return streams.ErrNoChange
		}
		return nil
	})
	return released, err
}

// Active lists the jobs holding a user's slots.
func (a *ActiveJobs) Active(ctx context.Context, tenant, user string) ([]string, error) {
	key, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	var set ActiveSet
	if _, _, err := streams.GetJSON(ctx, a.kv, key, &set); err != nil {
		return nil, err
	}
	return set.IDs(), nil
}

// ActiveJobsConsumer is the durable consumer "active-jobs" on RESULTS whose handler is
// ReleaseFinished; replicas share it. It starts at the stream's end: earlier results
// were released by then or are found by Acquire's reconciling.
func ActiveJobsConsumer() streams.ConsumerSpec {
	return streams.ConsumerSpec{
		Stream: schemas.StreamResults, Durable: ActiveConsumer,
		Description:    "frees a user's active-job slot when the job's final result is published",
		FilterSubjects: []string{"studio.results.>"},
		DeliverNew:     true, AckWait: 30 * time.Second, MaxAckPending: 256,
	}
}

// ReleaseFinished frees the slot of the job whose final result m is (a HandlerFunc for
// ActiveJobsConsumer). Stages that fail a job publish its result too, so this covers
// success and failure; ingest releases itself when it cannot queue a job or cancels
// one. Anything else on the stream is acknowledged untouched; a failed release is
// retried.
func (a *ActiveJobs) ReleaseFinished(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
	var res schemas.ResultEvent
	if json.Unmarshal(m.Data, &res) != nil || !res.Status.Final() || res.JobID == "" ||
		schemas.ValidToken(res.Tenant) != nil || schemas.ValidToken(res.User) != nil {
		return nil, nil // not a final result of a job: nothing to release
	}
	if _, err := a.Release(ctx, res.Tenant, res.User, res.JobID); err != nil {
		return nil, fmt.Errorf("release the active-job slot of %s: %w", res.JobID, err)
	}
	return nil, nil
}
