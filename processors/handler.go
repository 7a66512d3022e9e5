package processors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// JobStore reads and updates job records; jobs.Store implements it.
type JobStore interface {
	Get(ctx context.Context, id string) (*schemas.JobRecord, error)
	Update(ctx context.Context, id string, fn func(*schemas.JobRecord) error) (*schemas.JobRecord, error)
	// Read and UpdateFrom let a stage write a record it has just read without reading
	// it again (see jobs.Store.UpdateFrom).
	Read(ctx context.Context, id string) (jobs.Version, error)
	UpdateFrom(ctx context.Context, id string, from jobs.Version, fn func(*schemas.JobRecord) error) (jobs.Version, error)
}

// BeginAfter is how long a stage run may take before its start is written to the job's
// record on its own. A run that ends sooner writes its start and its end in one update
// (from the record it read when it began), so a fast stage costs one record write and
// no second read, and the client misses only a progress step it could not have seen:
// the stage's "running" state lasted less than BeginAfter. A longer run (a model, a
// large image) shows its stage as running after BeginAfter, and a failed run writes
// its start before its failure, as the record always showed.
const BeginAfter = 250 * time.Millisecond

// Observer is told about stage runs and finished jobs, for metrics and traces
// (internal/metrics implements it). It is called from many goroutines and must not block.
type Observer interface {
	// StageStarted is called when a stage run of ev begins. The returned function is
	// called exactly once when the run ends, with its outcome ("ok", "retry", "failed" or
	// "skipped"), its error and its duration.
	StageStarted(ctx context.Context, stage schemas.Stage, ev *schemas.JobEvent, attempt int, at time.Time) func(outcome string, err error, d time.Duration)
	// JobFinished is called when this stage moved the job's record to a final status
	// (succeeded, failed or cancelled): once per job, redeliveries included.
	JobFinished(ev *schemas.JobEvent, status schemas.Status)
}

// Handler adapts a Step to streams.Handler. Safe for concurrent use.
type Handler struct {
	Step   Step
	Jobs   JobStore
	Pub    streams.Publisher
	Worker string
	Log    logrus.FieldLogger
	// Observe, when set, is told about every stage run and finished job.
	Observe Observer
	// Deadline, when positive, replaces the stage row's per-image Deadline.
	Deadline time.Duration
	// Runs, when set, takes the stage telemetry and publishes it in batches; unset, each
	// stage run is one message on studio.telemetry.<stage>, published with the outputs.
	Runs StageRunBatcher
	now  func() time.Time
}

var _ streams.Handler = (*Handler)(nil)

// NewHandler wires a step to the job store and publisher.
func NewHandler(step Step, jobs JobStore, pub streams.Publisher, worker string, log logrus.FieldLogger) *Handler {
	return &Handler{Step: step, Jobs: jobs, Pub: pub, Worker: worker, Log: log, now: time.Now}
}

type item struct {
	msg     *streams.Msg
	ev      *schemas.JobEvent
	started time.Time
	res     *streams.Result
	log     logrus.FieldLogger
	end     func(outcome string, err error, d time.Duration)
	skipped schemas.Status // the record's status when begin skipped the job
	// resend is the result event a skipped redelivery publishes again: the job ended in
	// this stage (store succeeded it, or this stage failed it), and the run that ended
	// it may have died before its result was published. Its message id de-duplicates.
	resend *schemas.JobRecord
	inputs map[string]schemas.ObjectRef // the artifacts the event carried into the stage

	// The run's start is written by the timer begin set (after BeginAfter), by a failure,
	// or with its end by finish; see BeginAfter. Until the timer is settled, ver and
	// beginErr belong to the timer's write.
	batchSize int
	step      int // ev.ChainStep and len(ev.Chain) as the run began: Process may change ev
	steps     int
	ver       jobs.Version // the record as begin read it, then as the start wrote it
	timer     *time.Timer
	begun     chan struct{} // closed when the timer's write is done
	settled   bool
	written   bool // the start is in the record
	beginErr  error
}

// Handle implements streams.Handler.
func (h *Handler) Handle(ctx context.Context, batch []*streams.Msg) []streams.Result {
	stage := h.Step.Stage()
	results := make([]streams.Result, len(batch))
	var live []*item
	for i, m := range batch {
		it := &item{msg: m, res: &results[i], started: h.now()}
		ev, err := decodeEvent(m.Data)
		if err != nil {
			it.res.Err = Permanent(stage, CodeBadEvent, "event on %s is not a valid job event: %v", m.Subject, err)
			continue
		}
		it.ev = ev
		it.log = h.Log.WithFields(logrus.Fields{
			"stage": stage, "job_id": ev.JobID, "trace_id": trace.ID(ev.TraceParent),
			"tenant": ev.Tenant, "user_id": ev.User, "attempt": m.Delivered,
		})
		it.end = func(string, error, time.Duration) {}
		if h.Observe != nil {
			it.end = h.Observe.StageStarted(ctx, stage, ev, m.Delivered, it.started)
		}
		skip, err := h.begin(ctx, it, len(batch))
		switch {
		case err != nil:
			it.res.Err = err
			it.end(outcomeOf(err), err, h.now().Sub(it.started))
		case skip && it.skipped == schemas.StatusSucceeded:
			it.log.WithField("chain_step", ev.ChainStep).Info("this step of the chain is already done; skipping the redelivery")
			it.end("skipped", nil, h.now().Sub(it.started))
		case skip:
			it.log.WithField("status", it.skipped).Info("job is final or already past this stage; acking the message and dropping it")
			it.end("skipped", nil, h.now().Sub(it.started))
			if it.resend != nil {
				if out, err := resultOutput(it.resend, ev.TraceParent); err == nil {
					it.res.Outputs = []streams.Output{out}
				}
				if it.resend.Status == schemas.StatusSucceeded {
					// The run that succeeded the job may have died before its clean-up.
					h.finished(ctx, it, ev.Artifacts)
				}
			}
			if it.skipped == schemas.StatusCancelled && h.Observe != nil {
				// Cancellation is counted where the pipeline notices it: the skip acks the
				// message and nothing goes downstream, so one stage sees it.
				h.Observe.JobFinished(ev, schemas.StatusCancelled)
			}
		default:
			it.inputs = maps.Clone(ev.Artifacts)
			live = append(live, it)
		}
	}
	if len(live) == 0 {
		return results
	}
	events := make([]*schemas.JobEvent, len(live))
	for i, it := range live {
		events[i] = it.ev
	}
	errs, late := h.process(ctx, events)
	for i, it := range live {
		var err error
		if i < len(errs) {
			err = errs[i]
		}
		// A wait for an unavailable object store is not the work being too slow: it
		// stays transient, and the message is redelivered once the store is back.
		if err != nil && late > 0 && !isJobError(err) && !errors.Is(err, blob.ErrUnavailable) {
			err = Permanent(stage, CodeStageDeadline,
				"the %s stage ran past its deadline of %s per image (%v); the input takes too long to process: send a smaller or simpler image", stage, late, err)
		}
		if err != nil {
			h.writeStart(ctx, it)
			it.res.Err = err
			it.end(outcomeOf(err), err, h.now().Sub(it.started))
			h.retryTelemetry(ctx, it, len(live), err)
			continue
		}
		outs, err := h.finish(ctx, it, len(live))
		it.res.Outputs, it.res.Err = outs, err
		if err != nil {
			it.end(outcomeOf(err), err, h.now().Sub(it.started))
		}
	}
	return results
}

// process runs the Step under the stage's Deadline (n × Deadline for n events). late is
// the per-image deadline when it ended the run (the outer context still live), else 0.
func (h *Handler) process(ctx context.Context, events []*schemas.JobEvent) (errs []error, late time.Duration) {
	per := h.Deadline
	if row, err := Lookup(h.Step.Stage()); per <= 0 && err == nil {
		per = row.Deadline
	}
	if per <= 0 {
		return h.Step.Process(ctx, events), 0
	}
	dctx, cancel := context.WithTimeout(ctx, per*time.Duration(len(events)))
	defer cancel()
	errs = h.Step.Process(dctx, events)
	if ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) {
		late = per
	}
	return errs, late
}

func isJobError(err error) bool {
	var jerr *schemas.JobError
	return errors.As(err, &jerr)
}

// outcomeOf names a failed run as the telemetry event does: permanent errors fail the
// job, others are retried.
func outcomeOf(err error) string {
	var jerr *schemas.JobError
	if errors.As(err, &jerr) {
		return "failed"
	}
	return "retry"
}

// begin reads the job's record and decides whether the stage runs it; skip is true for
// jobs that must not run: final ones (succeeded, failed, cancelled) and ones a later
// stage has begun (see Superseded). For a job that runs it arms the timer that writes
// the run's start if the run outlasts BeginAfter.
func (h *Handler) begin(ctx context.Context, it *item, batchSize int) (skip bool, err error) {
	stage := h.Step.Stage()
	v, err := h.Jobs.Read(ctx, it.ev.JobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return false, Permanent(stage, CodeBadEvent, "job %s has no record (expired or erased)", it.ev.JobID)
	}
	if err != nil {
		return false, fmt.Errorf("record start of %s: %w", stage, err)
	}
	r := v.Record
	if Superseded(r, it.ev.ChainStep, stage) {
		it.skipped = r.Status
		if endedHere(r, stage) {
			it.resend = r
		}
		return true, nil
	}
	// A step of a chain runs once: a redelivered message of a step that is done (its
	// outputs are in the record) is acknowledged without work. The store stage is
	// exempt: it must be able to publish what a crashed run of it did not.
	if stepDone(r, it.ev) && stage != schemas.StageStore {
		it.skipped = schemas.StatusSucceeded
		return true, nil
	}
	it.ver, it.batchSize, it.step, it.steps = v, batchSize, it.ev.ChainStep, len(it.ev.Chain)
	it.begun = make(chan struct{})
	it.timer = time.AfterFunc(BeginAfter, func() {
		defer close(it.begun)
		it.ver, it.beginErr = h.Jobs.UpdateFrom(ctx, it.ev.JobID, it.ver, func(r *schemas.JobRecord) error {
			if !h.start(it, r) {
				return streams.ErrNoChange
			}
			return nil
		})
	})
	return false, nil
}

// settle stops the timer of begin, or waits for its write; afterwards it.written says
// whether the run's start is in the record and it.ver is the record as last read or
// written. It may be called more than once.
func (it *item) settle() {
	if it.settled || it.timer == nil {
		return
	}
	it.settled = true
	if it.timer.Stop() {
		return // the run was quick: its start goes with its end
	}
	<-it.begun
	it.written = it.beginErr == nil
	if it.beginErr != nil {
		it.log.WithError(it.beginErr).Warn("could not record the start of the stage run; it is recorded with its end")
		it.ver = jobs.Version{} // read the record again
	}
}

// writeStart writes the start of a run that failed before the timer did, so the record
// shows the attempt as it always did. An error is logged: the failure goes on.
func (h *Handler) writeStart(ctx context.Context, it *item) {
	if it.settle(); it.written || it.timer == nil {
		return
	}
	v, err := h.Jobs.UpdateFrom(ctx, it.ev.JobID, it.ver, func(r *schemas.JobRecord) error {
		if !h.start(it, r) {
			return streams.ErrNoChange
		}
		return nil
	})
	if err != nil {
		it.log.WithError(err).Warn("could not record the start of a failed stage run")
		return
	}
	it.ver, it.written = v, true
}

// start records in r that the stage started on the job, unless the job must not run
// (as begin decides; the record may have changed since): then it reports false and
// leaves r alone.
func (h *Handler) start(it *item, r *schemas.JobRecord) bool {
	stage := h.Step.Stage()
	done := it.steps > 0 && it.step < len(r.Chain) && r.Chain[it.step].Status == schemas.StatusSucceeded // stepDone
	if Superseded(r, it.step, stage) || (done && stage != schemas.StageStore) {
		return false
	}
	if r.Status == schemas.StatusQueued {
		r.Status = schemas.StatusRunning
	}
	if r.StartedAt.IsZero() {
		r.StartedAt = it.started.UTC()
	}
	if r.Status != schemas.StatusSucceeded {
		r.Stage = stage
		r.Percent = max(r.Percent, schemas.ChainPercent(it.step, it.steps, StagePercent(stage)))
		r.QueuePosition = 0
	}
	if r.Stages == nil {
		r.Stages = map[schemas.Stage]*schemas.StageTiming{}
	}
	r.Stages[stage] = &schemas.StageTiming{StartedAt: it.started.UTC(), Attempts: it.msg.Delivered, Worker: h.Worker, BatchSize: it.batchSize}
	return true
}

// finish records the stage's timing, advances the job, and builds the outputs.
func (h *Handler) finish(ctx context.Context, it *item, batchSize int) ([]streams.Output, error) {
	stage := h.Step.Stage()
	ev := it.ev
	done := h.now()
	dur := done.Sub(it.started)
	if ev.Stamps == nil {
		ev.Stamps = map[schemas.Stage]time.Time{}
	}
	ev.Stamps[stage] = done.UTC()

	succeeded := false // this run moved the job to succeeded (not a redelivery)
	stopped := false
	it.settle()
	v, err := h.Jobs.UpdateFrom(ctx, ev.JobID, it.ver, func(r *schemas.JobRecord) error {
		succeeded = false
		if !it.written {
			h.start(it, r) // the run's start and end in one write (see BeginAfter)
		}
		// A job cancelled (or failed elsewhere) while the store stage ran keeps its
		// final state: no "succeeded" over it and no success result. Earlier stages
		// forward as usual; the next stage skips the job when it begins.
		if stopped = stage == schemas.StageStore && (r.Status == schemas.StatusCancelled || r.Status == schemas.StatusFailed); stopped {
			return streams.ErrNoChange
		}
		if st := r.Stages[stage]; st != nil {
			st.FinishedAt = done.UTC()
			st.DurationMS = ms(dur)
		}
		if len(ev.Chain) > 0 {
			if ev.ChainStep < len(r.Chain) && ev.ModelVersion != r.Chain[ev.ChainStep].ModelVersion && r.Chain[ev.ChainStep].Status == "" {
				r.Chain[ev.ChainStep].ModelVersion = ev.ModelVersion
			}
			if ev.ChainStep == 0 && ev.ModelVersion != r.ModelVersion {
				r.FallbackFrom, r.ModelVersion = r.ModelVersion, ev.ModelVersion
			}
		} else if ev.ModelVersion != r.ModelVersion {
			r.FallbackFrom, r.ModelVersion = r.ModelVersion, ev.ModelVersion
		}
		if stage == schemas.StageStore && len(ev.Chain) > 0 {
			// The store step recorded this step's outputs (and those of the following
			// steps the cache answered) in ev.Chain; the record adds each step's stage
			// times, which r.Stages holds only until the next step runs.
			r.Chain = keepDurations(ev.Chain, r.Chain, ev.ChainStep, r.Stages)
			if next := schemas.NextStep(ev.Chain); next < len(ev.Chain) {
				r.ChainStep = next
				r.Stage = schemas.StageIngest // no stage of the next step has begun (see Superseded)
				if !r.Status.Final() {
					r.Percent = max(r.Percent, schemas.ChainPercent(next, len(ev.Chain), 0))
				}
				return nil
			}
			r.ChainStep = len(ev.Chain) - 1
		}
		if stage == schemas.StageStore {
			succeeded = r.Status != schemas.StatusSucceeded
			r.Status = schemas.StatusSucceeded
			r.Percent = 100
			r.Results = ev.Artifacts
			r.FinishedAt = done.UTC()
			r.Error = nil
			return nil
		}
		if next := nextStage(stage); next != "" && !r.Status.Final() {
			r.Percent = max(r.Percent, eventPercent(ev, StagePercent(next)-1))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record end of %s: %w", stage, err)
	}
	rec := v.Record
	if stopped {
		it.log.WithField("status", rec.Status).Info("job ended while this stage ran; not forwarding it")
		return nil, nil
	}

	var outs []streams.Output
	if stage == schemas.StageStore && len(ev.Chain) > 0 {
		outs, err = chainOutputs(ev, rec)
		if err != nil {
			return nil, err
		}
	}
	if stage == schemas.StageStore && rec.Status == schemas.StatusSucceeded {
		// A shadow run (studio replay) ends in its record only: no result event, so
		// no webhook, notification, slot release or analytics row of the user's.
		if !ev.Shadow {
			out, err := resultOutput(rec, ev.TraceParent)
			if err != nil {
				return nil, err
			}
			outs = append(outs, out)
		}
		if rec.Status == schemas.StatusSucceeded {
			h.finished(ctx, it, it.inputs)
		}
	} else if stage != schemas.StageStore {
		ev.Schema = nextSchema(stage)
		data, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode event for %s: %w", nextStage(stage), err)
		}
		outs = append(outs, streams.Output{
			Subject: nextSubject(stage, ev),
			MsgID:   stepMsgID(ev, string(nextStage(stage))),
			Data:    data,
			Header:  headers(ev),
		})
	}
	outs = append(outs, h.telemetry(it, batchSize, "ok", nil, dur)...)
	it.log.WithFields(logrus.Fields{"latency_ms": ms(dur), "batch_size": batchSize, "queue_wait_ms": ms(it.msg.Received.Sub(it.msg.Published))}).Info("stage done")
	it.end("ok", nil, dur)
	if succeeded && h.Observe != nil && !ev.Shadow {
		h.Observe.JobFinished(ev, schemas.StatusSucceeded)
	}
	return outs, nil
}

// Finisher is implemented by a Step with work to do once its job's record is final:
// the store stage deletes the job's scratch artifacts then, and not before, so that a
// stale redelivery of an earlier stage never finds its input gone while the job runs.
type Finisher interface {
	// Finished is called after the record says succeeded, with the artifacts the
	// event carried into the stage; it may run more than once for a job. Its error is
	// logged, not retried: what it leaves the retention sweep removes later.
	Finished(ctx context.Context, ev *schemas.JobEvent, inputs map[string]schemas.ObjectRef) error
}

func (h *Handler) finished(ctx context.Context, it *item, inputs map[string]schemas.ObjectRef) {
	f, ok := h.Step.(Finisher)
	if !ok {
		return
	}
	if err := f.Finished(ctx, it.ev, inputs); err != nil {
		it.log.WithError(err).Warn("job succeeded but its scratch artifacts were not all removed; the retention sweep removes them later")
	}
}

// Fail marks the job failed and tells result subscribers; the runner calls it for
// permanent errors and exhausted deliveries. It is idempotent.
//
// A failure always ends the job for its client: when the record cannot be read or
// written (missing, erased, or the store unreachable past a few tries), the failed
// result is built from the event itself and published anyway, so the client learns
// the outcome and the slot release frees the user's active-job slot. A record that
// exists but could not be written stays non-final; the job deadline (see Sweeper) fails
// it later, and the result's message id (<job>:result) makes that a duplicate the
// RESULTS stream drops.
func (h *Handler) Fail(ctx context.Context, m *streams.Msg, cause error) error {
	stage := h.Step.Stage()
	ev, err := decodeEvent(m.Data)
	if err != nil {
		h.Log.WithError(err).WithField("subject", m.Subject).Warn("undecodable message failed; it is in the DLQ")
		return nil // no job to tell
	}
	jerr := &schemas.JobError{Code: CodeInternal, Message: cause.Error(), Stage: stage}
	if je := (*schemas.JobError)(nil); errors.As(cause, &je) {
		jerr = je
	} else if errors.Is(cause, streams.ErrMaxDeliveries) {
		jerr.Code = CodeMaxDeliveries
	}
	now := h.now().UTC()
	log := h.Log.WithFields(logrus.Fields{
		"stage": stage, "job_id": ev.JobID, "trace_id": trace.ID(ev.TraceParent),
		"tenant": ev.Tenant, "user_id": ev.User, "error_code": jerr.Code,
	})
	rec, failed, stale, err := markFailed(ctx, h.Jobs, ev.JobID, stage, jerr, now, func(r *schemas.JobRecord) bool {
		return Superseded(r, ev.ChainStep, stage) && !failedHere(r, stage)
	})
	if stale {
		// A redelivery that lost a race with the job (its input artifact consumed, its
		// job ended): the job is fine, the message is dropped. When this stage is the
		// one that ended the job (store succeeded it), the run that did so may have
		// died, or run out of deliveries while the stream electing a leader refused its
		// publishes, after the record was final and before the result event was stored:
		// the job would be final with no result event, its client waiting for ever. The
		// result is published again first; its message id (<job>:result) de-duplicates.
		// Found by cmd/studio TestChaos leader-kill.
		if endedHere(rec, stage) && !ev.Shadow {
			out, err := resultOutput(rec, ev.TraceParent)
			if err != nil {
				return err
			}
			if err := h.Pub.Publish(ctx, out); err != nil {
				log.WithError(err).Warn("could not publish the result of a job this stage ended; the message stays out of the DLQ and is tried again")
				return fmt.Errorf("publish the result of %s: %w", ev.JobID, err)
			}
		}
		log.WithFields(logrus.Fields{"status": rec.Status, "job_stage": rec.Stage, "cause": jerr.Message}).Info("failure of a superseded message; the job has moved on, dropping it")
		return fmt.Errorf("%s of job %s: %w", stage, ev.JobID, streams.ErrSuperseded)
	}
	if err != nil {
		log.WithError(err).Error("could not mark job failed; publishing its failed result from the event")
		rec, failed = FailedRecord(ev, jerr, now), true
	}
	log.WithField("reason", jerr.Message).Warn("job failed")
	if failed && h.Observe != nil && !ev.Shadow {
		h.Observe.JobFinished(ev, schemas.StatusFailed)
	}
	outs := []streams.Output{}
	if rec.Status == schemas.StatusFailed && !ev.Shadow {
		if out, err := resultOutput(rec, ev.TraceParent); err == nil {
			outs = append(outs, out)
		}
	}
	it := &item{msg: m, ev: ev, started: m.Received}
	outs = append(outs, h.telemetry(it, 1, "failed", cause, now.Sub(m.Received))...)
	if err := h.Pub.Publish(ctx, outs...); err != nil {
		log.WithError(err).Warn("could not publish the failure result; the message stays out of the DLQ and is tried again")
		return fmt.Errorf("publish the failed result of %s: %w", ev.JobID, err)
	}
	return nil
}

// markFailedAttempts bounds MarkFailed's tries when the store errs (not when the record
// is missing).
const markFailedAttempts = 3

// MarkFailed moves a job's record to failed with jerr, unless it is already final; stage
// (may be empty) gets its finish time. It returns the record as it now is and whether
// this call failed it. A store error other than jobs.ErrNotFound is retried a few times.
func MarkFailed(ctx context.Context, store JobStore, id string, stage schemas.Stage, jerr *schemas.JobError, now time.Time) (*schemas.JobRecord, bool, error) {
	rec, failed, _, err := markFailed(ctx, store, id, stage, jerr, now, nil)
	return rec, failed, err
}

// markFailed is MarkFailed that leaves the record alone, and reports stale, when keep
// says so of the record as read in the same compare-and-swap.
func markFailed(ctx context.Context, store JobStore, id string, stage schemas.Stage, jerr *schemas.JobError, now time.Time, keep func(*schemas.JobRecord) bool) (rec *schemas.JobRecord, failed, stale bool, err error) {
	for attempt := 1; ; attempt++ {
		failed, stale = false, false
		rec, err = store.Update(ctx, id, func(r *schemas.JobRecord) error {
			failed, stale = false, false
			if keep != nil && keep(r) {
				stale = true
				return streams.ErrNoChange
			}
			if r.Status.Final() {
				return streams.ErrNoChange
			}
			failed = true
			r.Status = schemas.StatusFailed
			r.Error = jerr
			r.FinishedAt = now
			if st := r.Stages[stage]; st != nil && st.FinishedAt.IsZero() {
				st.FinishedAt = now
				st.DurationMS = ms(now.Sub(st.StartedAt))
			}
			return nil
		})
		if err == nil || errors.Is(err, jobs.ErrNotFound) || attempt == markFailedAttempts {
			return rec, failed, stale, err
		}
		t := time.NewTimer(time.Duration(attempt) * 200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return rec, false, false, err
		case <-t.C:
		}
	}
}

// Superseded reports whether a message for stage is out of date for the job as its
// record r stands: the job is final (succeeded, failed or cancelled), or a later stage
// has begun it (r.Stage, the cursor every stage's begin moves forward, is past stage).
// A later stage begins only on the message this stage published, so its output is
// safely downstream. Such a message is acked and dropped, never failed or dead-lettered.
// A job whose record only shows this stage finished (the cursor still here) is not
// superseded: the run may have died before publishing, so the stage runs again and its
// output's message id de-duplicates.
//
// A chained job goes through the stages once per step, so the cursor is the pair (step,
// stage), compared in that order: a message of an earlier step is superseded once a
// stage of a later step has begun. Between steps (the store stage advanced r.ChainStep
// and reset r.Stage to ingest) the cursor still stands at the previous step's store, so
// a redelivered store message of that step runs again and republishes the next step's
// request (its message id de-duplicates).
func Superseded(r *schemas.JobRecord, step int, stage schemas.Stage) bool {
	if r.Status.Final() {
		return true
	}
	at, in := r.ChainStep, stageIndex(r.Stage)
	if at > 0 && in < 0 {
		at, in = at-1, stageIndex(schemas.StageStore)
	}
	if at != step {
		return at > step
	}
	return in > stageIndex(stage)
}

// endedHere reports whether stage is the one that ended the job: store succeeded it, or
// stage failed it. A redelivery then publishes the job's result again, in case the run
// that ended it died before publishing (the result's message id de-duplicates).
func endedHere(r *schemas.JobRecord, stage schemas.Stage) bool {
	return (r.Status == schemas.StatusSucceeded && stage == schemas.StageStore) || failedHere(r, stage)
}

// failedHere reports whether stage failed the job.
func failedHere(r *schemas.JobRecord, stage schemas.Stage) bool {
	return r.Status == schemas.StatusFailed && r.Error != nil && r.Error.Stage == stage
}

// stageIndex is a stage's place in Stages; -1 for ingest and anything not a stage.
func stageIndex(s schemas.Stage) int {
	for i, st := range Stages {
		if st.Name == s {
			return i
		}
	}
	return -1
}

// FailedRecord is the record of a failed job as far as its event tells: what Fail
// publishes when the job's own record cannot be read.
func FailedRecord(ev *schemas.JobEvent, jerr *schemas.JobError, now time.Time) *schemas.JobRecord {
	if len(ev.Chain) > 0 && ev.ChainStep > 0 {
		// The job's record names the first step (so does its result subject).
		first := ev.Chain[0]
		c := *ev
		c.Task, c.Model, c.ModelVersion, c.Params = first.Task, first.Model, first.ModelVersion, first.Params
		ev = &c
	}
	return &schemas.JobRecord{
		ID: ev.JobID, Tenant: ev.Tenant, User: ev.User, Tier: ev.Tier, Task: ev.Task,
		Model: ev.Model, ModelVersion: ev.ModelVersion, Params: ev.Params,
		Status: schemas.StatusFailed, Stage: jerr.Stage, Input: ev.Input, Style: ev.Style, Error: jerr, Chain: ev.Chain, ChainStep: ev.ChainStep,
		TraceID: trace.ID(ev.TraceParent), SubmittedAt: ev.SubmittedAt, FinishedAt: now,
	}
}

func (h *Handler) retryTelemetry(ctx context.Context, it *item, batchSize int, err error) {
	var jerr *schemas.JobError
	if errors.As(err, &jerr) {
		return // Fail reports permanent errors
	}
	it.log.WithError(err).Warn("stage attempt failed; will retry")
	if tel := h.telemetry(it, batchSize, "retry", err, h.now().Sub(it.started)); len(tel) > 0 {
		if perr := h.Pub.Publish(ctx, tel...); perr != nil {
			// The retry goes on without its telemetry; count what was lost.
			if c, ok := h.Observe.(TelemetryLossCounter); ok {
				c.TelemetryLost(string(h.Step.Stage()))
			}
		}
	}
}

// TelemetryLossCounter is implemented by an Observer that counts telemetry events a
// stage could not publish (internal/metrics does). Must not block.
type TelemetryLossCounter interface {
	TelemetryLost(stage string)
}

// StageRunBatcher takes stage runs and publishes many in one message
// (internal/telemetry.Batcher does). Add must not block; it counts what it drops.
type StageRunBatcher interface {
	Add(run schemas.StageRun) bool
}

// telemetry records one stage run: into the Runs batcher when the handler has one
// (best effort: a run the batcher drops is counted there), else as the output to publish
// with the stage's other outputs, one message per run. A shadow run records nothing.
func (h *Handler) telemetry(it *item, batchSize int, outcome string, cause error, dur time.Duration) []streams.Output {
	ev := it.ev
	if ev.Shadow {
		// A shadow run publishes no stage telemetry, so the user's analytics and a
		// rollout's canary figures never count it; replay_results is its record.
		return nil
	}
	run := schemas.StageRun{
		Schema: schemas.SchemaStageRun, JobID: ev.JobID, Tenant: ev.Tenant, User: ev.User, Tier: ev.Tier,
		Task: ev.Task, Model: ev.Model, ModelVersion: ev.ModelVersion, Stage: h.Step.Stage(),
		Worker: h.Worker, Attempt: it.msg.Delivered, BatchSize: batchSize, Outcome: outcome,
		StartedAt: it.started.UTC(), DurationMS: ms(dur), TraceParent: ev.TraceParent,
	}
	if !it.msg.Published.IsZero() {
		run.QueueWaitMS = ms(it.msg.Received.Sub(it.msg.Published))
	}
	if cause != nil {
		run.Error = cause.Error()
	}
	if h.Runs != nil {
		h.Runs.Add(run)
		return nil
	}
	data, err := json.Marshal(run)
	if err != nil {
		return nil
	}
	return []streams.Output{{
		Subject: schemas.TelemetrySubject(h.Step.Stage()),
		MsgID:   fmt.Sprintf("%s:%s:%d:%s", stepMsgID(ev, ""), h.Step.Stage(), it.msg.Delivered, outcome),
		Data:    data,
	}}
}

// resultOutput builds the result event for a final job record.
func resultOutput(rec *schemas.JobRecord, traceparent string) (streams.Output, error) {
	res := schemas.ResultFromRecord(rec, traceparent)
	data, err := json.Marshal(res)
	if err != nil {
		return streams.Output{}, fmt.Errorf("encode result of %s: %w", rec.ID, err)
	}
	h := streams.Header{}
	if traceparent != "" {
		h.Set("traceparent", traceparent)
	}
	return streams.Output{Subject: schemas.ResultSubject(rec.Tenant, rec.Task), MsgID: rec.ID + ":result", Data: data, Header: h}, nil
}

func headers(ev *schemas.JobEvent) streams.Header {
	h := streams.Header{}
	if ev.TraceParent != "" {
		h.Set("traceparent", trace.Child(ev.TraceParent))
	}
	h.Set("Studio-Job-Id", ev.JobID)
	return h
}

func decodeEvent(data []byte) (*schemas.JobEvent, error) {
	var ev schemas.JobEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	if ev.JobID == "" {
		return nil, errors.New("missing job_id")
	}
	if !ev.Tier.Valid() {
		return nil, fmt.Errorf("unknown tier %q", ev.Tier)
	}
	if err := schemas.ValidToken(ev.Tenant); err != nil {
		return nil, fmt.Errorf("tenant: %w", err)
	}
	return &ev, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
