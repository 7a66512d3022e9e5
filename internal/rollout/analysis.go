package rollout

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/creativeai-studio/studio/schemas"
)

// Figures are one version's results over a window.
type Figures struct {
	Version string `json:"version"`
	// Jobs are the finished jobs routed to this version (cache hits, cancellations and
	// bad input excluded).
	Jobs int `json:"jobs"`
	// Failed are jobs that failed for a reason not blamed on the input.
	Failed int `json:"failed"`
	// BadInput are failures blamed on the input, not counted in Jobs.
	BadInput int `json:"bad_input"`
	// Fallbacks are jobs another version finished after this one failed to load or run.
	Fallbacks    int     `json:"fallbacks"`
	ErrorRate    float64 `json:"error_rate"`
	FallbackRate float64 `json:"fallback_rate"`
	// FailedByCode counts the failures by error code.
	FailedByCode map[string]int `json:"failed_by_code,omitempty"`
	// P95MS is each stage's p95 processing time in milliseconds ("total": their sum).
	P95MS map[string]float64 `json:"p95_ms,omitempty"`
	// Ratings and ThumbsDown count the feedback on this version's results.
	Ratings        int     `json:"ratings"`
	ThumbsDown     int     `json:"thumbs_down"`
	ThumbsDownRate float64 `json:"thumbs_down_rate"`
}

// Tally accumulates result events and feedback into Figures per version. Not safe
// for concurrent use.
type Tally struct {
	task      schemas.Task
	ignore    map[string]bool
	figures   map[string]*Figures
	durations map[string]map[string][]float64 // version -> stage -> ms
}

// NewTally returns an empty tally of task's jobs; codes are failure codes blamed on the
// input.
func NewTally(task schemas.Task, codes []string) *Tally {
	ig := map[string]bool{}
	for _, c := range codes {
		ig[c] = true
	}
	return &Tally{task: task, ignore: ig, figures: map[string]*Figures{}, durations: map[string]map[string][]float64{}}
}

func (t *Tally) of(version string) *Figures {
	f, ok := t.figures[version]
	if !ok {
		f = &Figures{Version: version}
		t.figures[version] = f
		t.durations[version] = map[string][]float64{}
	}
	return f
}

// AddResult counts one job result. A job is the version's that it was routed to: the
// one asked for when a fallback ran instead.
func (t *Tally) AddResult(e schemas.ResultEvent) {
	if e.Task != t.task || e.CacheHit || e.Status == schemas.StatusCancelled {
		return
	}
	version := e.ModelVersion
	if e.FallbackFrom != "" {
		version = e.FallbackFrom
	}
	f := t.of(version)
	if e.Status == schemas.StatusFailed {
		code := "unknown"
		if e.Error != nil {
			code = e.Error.Code
		}
		if t.ignore[code] {
			f.BadInput++
			return
		}
		f.Failed++
		if f.FailedByCode == nil {
			f.FailedByCode = map[string]int{}
		}
		f.FailedByCode[code]++
	}
	f.Jobs++
	if e.FallbackFrom != "" {
		f.Fallbacks++
	}
	if e.Status != schemas.StatusSucceeded {
		return
	}
	total := 0.0
	for stage, ms := range e.DurationsMS {
		t.durations[version][string(stage)] = append(t.durations[version][string(stage)], ms)
		total += ms
	}
	t.durations[version]["total"] = append(t.durations[version]["total"], total)
}

// AddFeedback counts one rating of a result of version.
func (t *Tally) AddFeedback(version string, rating int) {
	f := t.of(version)
	f.Ratings++
	if rating < 0 {
		f.ThumbsDown++
	}
}

// Figures returns version's figures (zero when it had no jobs).
func (t *Tally) Figures(version string) *Figures {
	f := *t.of(version)
	if f.Jobs > 0 {
		f.ErrorRate = float64(f.Failed) / float64(f.Jobs)
		f.FallbackRate = float64(f.Fallbacks) / float64(f.Jobs)
	}
	if f.Ratings > 0 {
		f.ThumbsDownRate = float64(f.ThumbsDown) / float64(f.Ratings)
	}
	for stage, ds := range t.durations[version] {
		if f.P95MS == nil {
			f.P95MS = map[string]float64{}
		}
		f.P95MS[stage] = p95(ds)
	}
	return &f
}

// p95 is the nearest-rank 95th percentile.
func p95(ds []float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Float64s(s)
	i := int(math.Ceil(0.95*float64(len(s)))) - 1
	return math.Round(s[max(i, 0)]*10) / 10
}

// Verdict is what a window's figures call for.
type Verdict int

// The verdicts, mildest first.
const (
	// Wait: not enough canary jobs yet, or the hold has not passed.
	Wait Verdict = iota
	// Advance: the hold passed clean; go to the next step (or promote after the last).
	Advance
	// Pause: a soft breach (latency, thumbs-down).
	Pause
	// Rollback: a hard breach (errors, fallbacks).
	Rollback
)

// Judge compares the canary's window with stable's (or, when stable had too few jobs in
// it, with baseline, stable's last sufficient window) and says what to do, and why.
// holdDone says whether the step's hold has passed.
func Judge(th Thresholds, canary, stable, baseline *Figures, holdDone bool) (Verdict, string) {
	if canary.Jobs < th.MinSamples {
		return Wait, fmt.Sprintf("%d of %d canary jobs needed so far", canary.Jobs, th.MinSamples)
	}
	ref := stable
	if ref == nil || ref.Jobs < th.MinSamples {
		ref = baseline
	}
	stableErr, stableFall := 0.0, 0.0
	if ref != nil {
		stableErr, stableFall = ref.ErrorRate, ref.FallbackRate
	}
	if canary.ErrorRate >= th.MaxErrorRate && canary.ErrorRate > stableErr {
		return Rollback, fmt.Sprintf("error rate %.1f%% (%d of %d failed: %s) is at or above %.1f%% (stable %.1f%%)",
			100*canary.ErrorRate, canary.Failed, canary.Jobs, codes(canary.FailedByCode), 100*th.MaxErrorRate, 100*stableErr)
	}
	if canary.FallbackRate >= th.MaxFallbackRate && canary.FallbackRate > stableFall {
		return Rollback, fmt.Sprintf("fallback rate %.1f%% (%d of %d jobs ran another version) is at or above %.1f%%",
			100*canary.FallbackRate, canary.Fallbacks, canary.Jobs, 100*th.MaxFallbackRate)
	}
	if ref != nil && ref.Jobs >= th.MinSamples {
		for _, s := range th.LatencyStages {
			c, st := canary.P95MS[s], ref.P95MS[s]
			if st > 0 && c >= th.LatencyFloorMS && c >= th.LatencyRatio*st {
				return Pause, fmt.Sprintf("%s p95 %.0f ms is %.1fx stable's %.0f ms (limit %.1fx)", s, c, c/st, st, th.LatencyRatio)
			}
		}
	}
	if ref != nil && canary.Ratings >= th.MinFeedback && ref.Ratings >= th.MinFeedback &&
		canary.ThumbsDownRate-ref.ThumbsDownRate >= th.MaxThumbsDownIncrease {
		return Pause, fmt.Sprintf("thumbs-down %.0f%% against stable's %.0f%% (limit +%.0f points)",
			100*canary.ThumbsDownRate, 100*ref.ThumbsDownRate, 100*th.MaxThumbsDownIncrease)
	}
	if !holdDone {
		return Wait, "within thresholds; holding"
	}
	return Advance, fmt.Sprintf("clean hold: %d canary jobs, error rate %.1f%%, p95 total %.0f ms (%s)",
		canary.Jobs, 100*canary.ErrorRate, canary.P95MS["total"], refSummary(ref, stable, th.MinSamples))
}

// refSummary says what the canary was compared with.
func refSummary(ref, stable *Figures, need int) string {
	if ref == nil {
		n := 0
		if stable != nil {
			n = stable.Jobs
		}
		return fmt.Sprintf("stable had %d jobs, under the %d needed to compare: judged on errors alone", n, need)
	}
	which := "stable"
	if ref != stable {
		which = "stable's previous step"
	}
	return fmt.Sprintf("%s: %d jobs, %.1f%%, %.0f ms", which, ref.Jobs, 100*ref.ErrorRate, ref.P95MS["total"])
}

func codes(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
