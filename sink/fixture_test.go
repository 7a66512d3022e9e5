package sink_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// job is one job of the dataset with the values the pipeline would report for it.
type job struct {
	ev   schemas.ResultEvent
	runs []schemas.StageRun
	// totalMS, queueWaitMS and processingMS are what the jobs table must hold.
	totalMS, queueWaitMS, processingMS float64
}

// dataset is a day of traffic shaped like the pipeline's: results, stage runs, HTTP
// requests, audit events and feedback, built with the same subjects and message ids.
type dataset struct {
	now      time.Time
	jobs     []*job
	http     []schemas.HTTPRequest
	audit    []schemas.AuditEvent
	feedback []schemas.Feedback
}

type modelVersion struct {
	task           schemas.Task
	model, version string
	share          float64 // of the task's traffic
	failRate       float64
	inferenceMS    [2]float64
	like           float64 // probability of a thumbs up
}

var fixtureModels = []modelVersion{
	{schemas.TaskRemoveBackground, "isnet", "small", 0.8, 0.05, [2]float64{400, 1500}, 0.8},
	{schemas.TaskRemoveBackground, "isnet", "medium", 0.2, 0.15, [2]float64{900, 3000}, 0.6},
	{schemas.TaskUpscale, "realesrgan-x4fast", "v3", 1, 0.08, [2]float64{300, 900}, 0.7},
}

var fixtureTenants = []string{"acme", "globex", "initech", "umbrella"}

// newDataset builds n jobs submitted within the last 10 hours before now.
func newDataset(now time.Time, n int, seed uint64) *dataset {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	between := func(lo, hi float64) float64 { return math.Round((lo+rng.Float64()*(hi-lo))*1000) / 1000 }
	d := &dataset{now: now}
	for i := range n {
		tenant := fixtureTenants[rng.IntN(len(fixtureTenants))]
		user := fmt.Sprintf("user-%d", rng.IntN(8))
		var mv modelVersion
		if rng.Float64() < 0.7 {
			mv = fixtureModels[0]
			if rng.Float64() < fixtureModels[1].share {
				mv = fixtureModels[1]
			}
		} else {
			mv = fixtureModels[2]
		}
		tier := schemas.Tiers[rng.IntN(len(schemas.Tiers))]
		id := fmt.Sprintf("job-%05d-%s", i, tenant)
		submitted := now.Add(-time.Duration(rng.Int64N(int64(10 * time.Hour)))).Truncate(time.Millisecond)
		w, h := 200+rng.IntN(3000), 200+rng.IntN(3000)
		ct := "image/png"
		if rng.IntN(2) == 0 {
			ct = "image/jpeg"
		}
		ev := schemas.ResultEvent{
			Schema: schemas.SchemaJobResult, JobID: id, Tenant: tenant, User: user, Task: mv.task,
			Model: mv.model, ModelVersion: mv.version, Tier: tier, SubmittedAt: submitted,
			Input:       schemas.ObjectRef{Key: "inputs/" + id, Size: int64(20_000 + rng.IntN(2_000_000)), SHA256: fmt.Sprintf("%064x", i), ContentType: ct, Width: w, Height: h},
			TraceParent: fmt.Sprintf("00-%032x-%016x-01", i+1, i+1),
		}
		j := &job{ev: ev}
		switch r := rng.Float64(); {
		case r < 0.1:
			// Cache hit: done at ingest, no stage ran.
			j.ev.Status, j.ev.CacheHit = schemas.StatusSucceeded, true
			j.ev.FinishedAt = submitted.Add(time.Duration(between(2, 15) * float64(time.Millisecond)))
			j.ev.Results = results(mv, w, h, rng)
		case r < 0.12:
			j.ev.Status = schemas.StatusCancelled
			fallthrough
		default:
			j.runPipeline(mv, rng, between)
		}
		if j.ev.Status == "" {
			j.ev.Status = schemas.StatusSucceeded
		}
		// The store stage and the failure path publish ResultFromRecord of the job
		// record; build the event the same way.
		e := j.ev
		rec := schemas.JobRecord{
			ID: e.JobID, Tenant: e.Tenant, User: e.User, Tier: e.Tier, Task: e.Task, Model: e.Model,
			ModelVersion: e.ModelVersion, Status: e.Status, Input: e.Input, Results: e.Results, Error: e.Error,
			CacheHit: e.CacheHit, SubmittedAt: e.SubmittedAt, StartedAt: e.StartedAt, FinishedAt: e.FinishedAt,
			Stages: map[schemas.Stage]*schemas.StageTiming{},
		}
		for stage, d := range e.DurationsMS {
			rec.Stages[stage] = &schemas.StageTiming{DurationMS: d}
		}
		j.ev = schemas.ResultFromRecord(&rec, e.TraceParent)
		j.totalMS = float64(j.ev.FinishedAt.Sub(j.ev.SubmittedAt).Microseconds()) / 1000
		d.jobs = append(d.jobs, j)

		// The submit request, and some sampled status polls.
		status := 202
		switch r := rng.Float64(); {
		case r < 0.03:
			status = 503
		case r < 0.08:
			status = 429
		}
		d.http = append(d.http, schemas.HTTPRequest{
			Schema: schemas.SchemaHTTPRequest, ID: "req-submit-" + id, Time: submitted, Method: "POST", Route: "POST /v1/jobs",
			Status: status, DurationMS: between(5, 60), Tenant: tenant, User: user, RequestBytes: ev.Input.Size, ResponseBytes: 300, SampleRate: 1, RequestID: "rq-" + id,
		})
		if rng.IntN(3) == 0 {
			d.http = append(d.http, schemas.HTTPRequest{
				Schema: schemas.SchemaHTTPRequest, ID: "req-poll-" + id, Time: submitted.Add(time.Second), Method: "GET", Route: "GET /v1/jobs/{id}",
				Status: 200, DurationMS: between(0.5, 4), Tenant: tenant, User: user, ResponseBytes: 800, SampleRate: 0.1, RequestID: "rp-" + id,
			})
		}
		d.audit = append(d.audit, schemas.AuditEvent{
			Schema: schemas.SchemaAudit, ID: "audit-" + id, Time: submitted, Actor: user, Tenant: tenant, Action: "job-submit",
			Resource: "job/" + id, IP: fmt.Sprintf("10.0.%d.%d", i/250%250, i%250), Result: "allowed", RequestID: "rq-" + id, TraceID: fmt.Sprintf("%032x", i+1),
		})
		if j.ev.Status == schemas.StatusSucceeded && rng.Float64() < 0.5 {
			fb := schemas.Feedback{
				Schema: schemas.SchemaFeedback, ID: "fb-" + id, JobID: id, Tenant: tenant, User: user, Rating: -1,
				Model: mv.model, ModelVersion: mv.version, Time: j.ev.FinishedAt.Add(time.Duration(rng.IntN(600)) * time.Second),
			}
			if rng.Float64() < mv.like {
				fb.Rating = 1
			}
			d.feedback = append(d.feedback, fb)
			if rng.Float64() < 0.15 {
				// The user changed their mind a minute later: only this rating counts.
				again := fb
				again.ID, again.Rating, again.Comment, again.Time = "fb2-"+id, -fb.Rating, "changed my mind", fb.Time.Add(time.Minute)
				d.feedback = append(d.feedback, again)
			}
		}
	}
	return d
}

// runPipeline fills in what the four stages report: stage runs (with retries and a
// failure for some jobs), durations and the final status.
func (j *job) runPipeline(mv modelVersion, rng *rand.Rand, between func(lo, hi float64) float64) {
	ev := &j.ev
	j.queueWaitMS = between(5, 400)
	if ev.Tenant == "umbrella" {
		j.queueWaitMS += 800 // the noisy tenant waits behind its own backlog
	}
	started := ev.SubmittedAt.Add(time.Duration(j.queueWaitMS * float64(time.Millisecond)))
	ev.StartedAt = started
	ev.DurationsMS = map[schemas.Stage]float64{}
	cancelled := ev.Status == schemas.StatusCancelled
	failAt := schemas.Stage("")
	if !cancelled && rng.Float64() < mv.failRate {
		failAt = processors.StageNames()[rng.IntN(len(processors.StageNames()))]
	}
	ranges := map[schemas.Stage][2]float64{
		schemas.StagePreprocess: {20, 80}, schemas.StageInference: mv.inferenceMS,
		schemas.StagePostprocess: {30, 100}, schemas.StageStore: {10, 40},
	}
	t := started
	for si, stage := range processors.StageNames() {
		wait := j.queueWaitMS
		if si > 0 {
			wait = between(0.5, 10)
			t = t.Add(time.Duration(wait * float64(time.Millisecond)))
		}
		attempt := 1
		run := func(outcome string, dur float64, errText string) {
			j.runs = append(j.runs, schemas.StageRun{
				Schema: schemas.SchemaStageRun, JobID: ev.JobID, Tenant: ev.Tenant, User: ev.User, Tier: ev.Tier,
				Task: ev.Task, Model: ev.Model, ModelVersion: ev.ModelVersion, Stage: stage, Worker: fmt.Sprintf("%s-w%d", stage, rng.IntN(2)),
				Attempt: attempt, BatchSize: 1 + rng.IntN(4), Outcome: outcome, Error: errText, StartedAt: t.UTC(),
				DurationMS: dur, QueueWaitMS: wait, TraceParent: ev.TraceParent,
			})
			t = t.Add(time.Duration(dur * float64(time.Millisecond)))
			attempt++
		}
		if rng.Float64() < 0.08 {
			run("retry", between(1, 20), "object store timeout")
		}
		r := ranges[stage]
		dur := between(r[0], r[1])
		if stage == failAt {
			run("failed", dur, "decode failed")
			ev.Status = schemas.StatusFailed
			ev.Error = &schemas.JobError{Code: "bad_image", Message: "decode failed", Stage: stage}
			ev.DurationsMS[stage] = dur
			break
		}
		run("ok", dur, "")
		ev.DurationsMS[stage] = dur
		if cancelled && si == 1 {
			break
		}
	}
	ev.FinishedAt = t.Add(time.Millisecond)
	for _, d := range ev.DurationsMS {
		j.processingMS += d
	}
	if ev.Status == "" {
		ev.Results = results(mv, ev.Input.Width, ev.Input.Height, rng)
	}
}

func results(mv modelVersion, w, h int, rng *rand.Rand) map[string]schemas.ObjectRef {
	if mv.task == schemas.TaskUpscale {
		return map[string]schemas.ObjectRef{"upscaled": {Key: "r/up.png", Size: int64(100_000 + rng.IntN(5_000_000)), Width: 4 * w, Height: 4 * h, ContentType: "image/png"}}
	}
	return map[string]schemas.ObjectRef{
		"cutout":    {Key: "r/cutout.png", Size: int64(50_000 + rng.IntN(1_000_000)), Width: w, Height: h, ContentType: "image/png"},
		"mask":      {Key: "r/mask.png", Size: int64(5_000 + rng.IntN(100_000)), Width: w, Height: h, ContentType: "image/png"},
		"thumbnail": {Key: "r/thumb.png", Size: int64(1_000 + rng.IntN(20_000)), Width: 256, Height: 256, ContentType: "image/png"},
	}
}

// outputs returns the messages, with the subjects and message ids the pipeline uses.
func (d *dataset) outputs(t testing.TB) []streams.Output {
	var outs []streams.Output
	for _, j := range d.jobs {
		for i := range j.runs {
			r := &j.runs[i]
			outs = append(outs, jsonOutput(t, schemas.TelemetrySubject(r.Stage), fmt.Sprintf("%s:%s:%d:%s", r.JobID, r.Stage, r.Attempt, r.Outcome), r))
		}
		outs = append(outs, jsonOutput(t, schemas.ResultSubject(j.ev.Tenant, j.ev.Task), j.ev.JobID+":result", j.ev))
	}
	for _, h := range d.http {
		outs = append(outs, jsonOutput(t, schemas.SubjectHTTPTelemetry, h.ID, h))
	}
	for _, a := range d.audit {
		outs = append(outs, jsonOutput(t, schemas.AuditSubject(a.Action), a.ID, a))
	}
	for _, f := range d.feedback {
		outs = append(outs, jsonOutput(t, schemas.SubjectFeedback, f.ID, f))
	}
	return outs
}

func (d *dataset) stageRuns() int {
	n := 0
	for _, j := range d.jobs {
		n += len(j.runs)
	}
	return n
}

// interpolated is ClickHouse's quantile(level) for fewer than 8192 values: linear
// interpolation between the sorted neighbours of level*(n-1).
func interpolated(values []float64, level float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	idx := level * float64(len(s)-1)
	lo := int(idx)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (idx-float64(lo))*(s[lo+1]-s[lo])
}

func mean(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, v := range values {
		sum += v
	}
	return sum / float64(len(values))
}

func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Second).Truncate(time.Hour) }

func dayOf(t time.Time) time.Time {
	y, m, dd := t.UTC().Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// latestRatings keeps each user's latest rating of a job, as the cookbook does.
func (d *dataset) latestRatings() []schemas.Feedback {
	type key struct{ job, tenant, user string }
	latest := map[key]schemas.Feedback{}
	for _, f := range d.feedback {
		k := key{f.JobID, f.Tenant, f.User}
		if cur, ok := latest[k]; !ok || f.Time.Truncate(time.Second).After(cur.Time.Truncate(time.Second)) {
			latest[k] = f
		}
	}
	out := make([]schemas.Feedback, 0, len(latest))
	for _, f := range latest {
		out = append(out, f)
	}
	return out
}
