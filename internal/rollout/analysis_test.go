package rollout

import (
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/schemas"
)

func figures(jobs, failed, fallbacks int, p95 map[string]float64) *Figures {
	f := &Figures{Jobs: jobs, Failed: failed, Fallbacks: fallbacks, P95MS: p95}
	if jobs > 0 {
		f.ErrorRate = float64(failed) / float64(jobs)
		f.FallbackRate = float64(fallbacks) / float64(jobs)
	}
	return f
}

func TestJudge(t *testing.T) {
	th := Thresholds{MinSamples: 10}.WithDefaults()
	fast := map[string]float64{"inference": 100, "total": 150}
	slow := map[string]float64{"inference": 250, "total": 300}
	cases := []struct {
		name                     string
		canary, stable, baseline *Figures
		holdDone                 bool
		want                     Verdict
		reason                   string
	}{
		{"too few canary jobs wait, even with failures", figures(5, 5, 0, nil), figures(50, 0, 0, fast), nil, true, Wait, "5 of 10"},
		{"errors at 1% or more roll back at once, before the hold ends", figures(100, 1, 0, fast), figures(100, 0, 0, fast), nil, false, Rollback, "error rate 1.0%"},
		{"errors no worse than stable's do not roll back", figures(100, 2, 0, fast), figures(100, 3, 0, fast), nil, true, Advance, "clean hold"},
		{"fallbacks roll back", figures(50, 0, 5, fast), figures(50, 0, 0, fast), nil, false, Rollback, "fallback rate 10.0%"},
		{"a p95 at twice stable's pauses", figures(50, 0, 0, slow), figures(50, 0, 0, fast), nil, true, Pause, "inference p95 250 ms is 2.5x"},
		{"latency under the floor never pauses", figures(50, 0, 0, map[string]float64{"inference": 10}), figures(50, 0, 0, map[string]float64{"inference": 2}), nil, true, Advance, "clean hold"},
		{"a stage outside the judged ones never pauses", figures(50, 0, 0, map[string]float64{"preprocess": 147, "inference": 100}), figures(50, 0, 0, map[string]float64{"preprocess": 45, "inference": 100}), nil, true, Advance, "clean hold"},
		{"a clean window waits for its hold", figures(50, 0, 0, fast), figures(50, 0, 0, fast), nil, false, Wait, "holding"},
		{"a clean hold advances", figures(50, 0, 0, fast), figures(50, 0, 0, fast), nil, true, Advance, "clean hold"},
		{"with no stable jobs (at 100%) the baseline decides latency", figures(50, 0, 0, slow), figures(0, 0, 0, nil), figures(50, 0, 0, fast), true, Pause, "inference p95"},
		{"with no stable jobs and no baseline only errors count", figures(50, 0, 0, slow), nil, nil, true, Advance, "clean hold"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := Judge(th, c.canary, c.stable, c.baseline, c.holdDone)
			if got != c.want || !strings.Contains(why, c.reason) {
				t.Errorf("Judge = %d %q; want %d containing %q", got, why, c.want, c.reason)
			}
		})
	}
	t.Run("a thumbs-down share 10 points above stable's pauses", func(t *testing.T) {
		c, s := figures(50, 0, 0, fast), figures(50, 0, 0, fast)
		c.Ratings, c.ThumbsDown, c.ThumbsDownRate = 20, 6, 0.3
		s.Ratings, s.ThumbsDown, s.ThumbsDownRate = 20, 2, 0.1
		if got, why := Judge(th, c, s, nil, true); got != Pause || !strings.Contains(why, "thumbs-down 30%") {
			t.Errorf("Judge = %d %q", got, why)
		}
	})
}

func TestTallyCountsWhatTheModelCaused(t *testing.T) {
	tl := NewTally(schemas.TaskUpscale, BadInputCodes)
	add := func(version, fallbackFrom string, status schemas.Status, code string, ms float64, cache bool) {
		e := schemas.ResultEvent{Task: schemas.TaskUpscale, ModelVersion: version, FallbackFrom: fallbackFrom, Status: status, CacheHit: cache,
			DurationsMS: map[schemas.Stage]float64{schemas.StageInference: ms}}
		if code != "" {
			e.Error = &schemas.JobError{Code: code}
		}
		tl.AddResult(e)
	}
	for i := range 19 {
		add("b", "", schemas.StatusSucceeded, "", float64(i+1), false)
	}
	add("b", "", schemas.StatusFailed, "inference_failed", 0, false)
	add("b", "", schemas.StatusFailed, "corrupt_image", 0, false)                                             // the input's fault
	add("b", "", schemas.StatusSucceeded, "", 1, true)                                                        // a cache hit ran no model
	add("a", "b", schemas.StatusSucceeded, "", 5, false)                                                      // b fell back to a: b's job
	add("b", "", schemas.StatusCancelled, "", 0, false)                                                       // not an outcome
	tl.AddResult(schemas.ResultEvent{Task: schemas.TaskOCR, ModelVersion: "b", Status: schemas.StatusFailed}) // another task
	tl.AddFeedback("b", -1)
	tl.AddFeedback("b", 1)
	f := tl.Figures("b")
	if f.Jobs != 21 || f.Failed != 1 || f.BadInput != 1 || f.Fallbacks != 1 || f.FailedByCode["inference_failed"] != 1 {
		t.Errorf("figures %+v; want 21 jobs, 1 failed, 1 bad input, 1 fallback", f)
	}
	if f.P95MS["inference"] != 18 || f.ThumbsDownRate != 0.5 {
		t.Errorf("p95 %v thumbs-down %v; want inference 18 ms (nearest rank of 20) and 0.5", f.P95MS, f.ThumbsDownRate)
	}
	if a := tl.Figures("a"); a.Jobs != 0 {
		t.Errorf("the fallback version was credited with %d jobs", a.Jobs)
	}
}
