package processors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// deadlineMargin is what DefaultJobDeadline allows beyond the stages' own bounds: queue
// waits, redelivery back-off and the hand-offs between stages.
const deadlineMargin = 15 * time.Minute

// DefaultJobDeadline is the longest a job may stay non-final after its submission when
// the operator sets nothing: for every stage of the table, MaxDeliver deliveries each
// held as long as the longer of AckWait and Timeout, plus a 15-minute margin. With the
// table as it is that is 90 minutes.
func DefaultJobDeadline() time.Duration {
	d := deadlineMargin
	for _, s := range Stages {
		d += time.Duration(max(s.MaxDeliver, 1)) * max(s.AckWait, s.Timeout)
	}
	return d
}

// Deadlines fails every job that is not final Deadline after its submission, whatever
// died on its way (a lost max-deliveries advisory, a record write that failed, a stage
// down for good): it marks the record failed with CodeDeadlineExceeded and publishes the
// job's result, which tells the client and frees the user's active-job slot. A stage
// that later meets the job skips it, as it skips any failed job.
//
// It keeps the non-final jobs in memory from a watch of the jobs bucket (read whole
// once at start) and checks them every Interval. Several processes may run it at once:
// marking is a compare-and-swap, so one of them fails a job, and the result's message
// id (<job>:result) de-duplicates its event. Run blocks; the fields must not change
// while it runs.
type Deadlines struct {
	Jobs *jobs.Store
	Pub  streams.Publisher
	// Deadline bounds how long after submission a job may stay non-final; it must be
	// positive.
	Deadline time.Duration
	// Interval is how often overdue jobs are looked for (default Deadline/60, at least
	// one second and at most a minute).
	Interval time.Duration
	Log      logrus.FieldLogger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Run checks deadlines until ctx is cancelled; it returns nil then, or the error that
// ended the watch of the jobs bucket.
func (d *Deadlines) Run(ctx context.Context) error {
	if d.Deadline <= 0 {
		return fmt.Errorf("processors: job deadline %s must be positive", d.Deadline)
	}
	interval := d.Interval
	if interval <= 0 {
		interval = min(max(d.Deadline/60, time.Second), time.Minute)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = logrus.StandardLogger()
	}
	changes, err := d.Jobs.WatchAll(ctx)
	if err != nil {
		return err
	}
	open := map[string]*schemas.JobRecord{}   // the non-final jobs
	unsent := map[string]*schemas.JobRecord{} // failed here, result not yet published
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("processors: the watch of the jobs bucket ended; job deadlines are not enforced")
			}
			if c.Record == nil || c.Record.Status.Final() {
				delete(open, c.ID)
			} else {
				open[c.ID] = c.Record
			}
		case <-tick.C:
			d.sweep(ctx, open, unsent)
		}
	}
}

// sweep fails the overdue jobs of open and forgets those that are gone or final; the
// results it could not publish wait in unsent for the next sweep.
func (d *Deadlines) sweep(ctx context.Context, open, unsent map[string]*schemas.JobRecord) {
	now := d.Now().UTC()
	for id, rec := range unsent {
		if d.publish(ctx, rec) == nil {
			delete(unsent, id)
		}
	}
	for id, rec := range open {
		if ctx.Err() != nil {
			return
		}
		if now.Sub(rec.SubmittedAt) < d.Deadline {
			continue
		}
		log := d.Log.WithFields(logrus.Fields{"job_id": id, "tenant": rec.Tenant, "user_id": rec.User, "stage": rec.Stage, "status": rec.Status})
		jerr := &schemas.JobError{
			Code:    CodeDeadlineExceeded,
			Message: fmt.Sprintf("the job was not finished %s after its submission (last at stage %s, %s); it was stopped", d.Deadline, rec.Stage, rec.Status),
			Stage:   rec.Stage,
		}
		got, failed, err := MarkFailed(ctx, d.Jobs, id, rec.Stage, jerr, now)
		if errors.Is(err, jobs.ErrNotFound) {
			delete(open, id)
			continue
		}
		if err != nil {
			log.WithError(err).Warn("could not fail an overdue job; will try again")
			continue
		}
		delete(open, id)
		if !failed {
			continue // it ended meanwhile
		}
		log.Warn("job failed: deadline exceeded")
		if d.publish(ctx, got) != nil {
			unsent[id] = got
		}
	}
}

// publish sends the result of a job failed for its deadline.
func (d *Deadlines) publish(ctx context.Context, rec *schemas.JobRecord) error {
	out, err := resultOutput(rec, "")
	if err == nil {
		err = d.Pub.Publish(ctx, out)
	}
	if err != nil {
		d.Log.WithError(err).WithField("job_id", rec.ID).Error("could not publish the result of an overdue job; will try again")
	}
	return err
}
