// Package rollout moves a task's unversioned traffic from a stable model version to a
// canary in steps (5%, 50%, 100% by default), judging each step from the pipeline's own
// results, and promotes, pauses or rolls back by itself.
//
// A Rollout is one JSON value per task in the KV bucket "rollouts" (its history keeps
// the earlier rollouts of the task). The weights every ingest replica routes by are one
// value per task in the bucket "routing" (Table): written whole with a revision check
// and watched by every replica (WatchRouting), so no replica ever routes by half a
// table. The Controller advances rollouts; one runs at a time (Lock), and it resumes from
// the stored state after a restart. Manager is what people use (CLI, admin API).
package rollout

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrNotFound: the task has no rollout.
	ErrNotFound = errors.New("rollout: no rollout for this task")
	// ErrActive: the task already has a rollout that has not ended.
	ErrActive = errors.New("rollout: the task already has an active rollout")
	// ErrState: the operation does not apply to the rollout's state.
	ErrState = errors.New("rollout: not allowed in this state")
	// ErrInvalid: the rollout request is malformed.
	ErrInvalid = errors.New("rollout: invalid request")
)

// State is where a rollout stands.
type State string

// The states. Promoted, rolled-back and aborted are final.
const (
	// StatePending: created; the controller has not routed anything to the canary yet.
	StatePending State = "pending"
	// StateRunning: the canary gets the current step's share; the controller judges it.
	StateRunning State = "running"
	// StatePaused: weights stay as they are and nothing advances until resumed (a soft
	// breach or an operator).
	StatePaused State = "paused"
	// StatePromoted: the canary gets every unversioned job.
	StatePromoted State = "promoted"
	// StateRolledBack: a hard breach sent every unversioned job back to stable.
	StateRolledBack State = "rolled-back"
	// StateAborted: an operator sent every unversioned job back to stable.
	StateAborted State = "aborted"
)

// Final reports whether the rollout has ended.
func (s State) Final() bool {
	return s == StatePromoted || s == StateRolledBack || s == StateAborted
}

// Thresholds decide each step. The defaults are the deployment runbook's: errors under
// 1%, p95 latency under twice stable's, and any error breach rolls back.
type Thresholds struct {
	// MaxErrorRate: a canary failure share (failed jobs, bad input excluded) at or above
	// this, and above stable's, rolls back at once. Default 0.01.
	MaxErrorRate float64 `json:"max_error_rate,omitempty"`
	// MaxFallbackRate: a share of canary jobs that fell back to another version at or
	// above this rolls back at once. Default 0.01.
	MaxFallbackRate float64 `json:"max_fallback_rate,omitempty"`
	// LatencyRatio: a canary stage p95 at or above this multiple of stable's pauses.
	// Default 2.
	LatencyRatio float64 `json:"latency_ratio,omitempty"`
	// LatencyStages are the stages whose p95 is judged ("total" is the sum of every
	// stage's time). Default inference and total: the stages around the model do the same
	// work for both versions, and on a few dozen jobs their p95s differ by noise alone
	// (a first manual rollout paused on preprocess 147 ms against 45 ms, 8 jobs each).
	LatencyStages []string `json:"latency_stages,omitempty"`
	// LatencyFloorMS: stage p95s under this never count as a breach (noise). Default 20.
	LatencyFloorMS float64 `json:"latency_floor_ms,omitempty"`
	// MaxThumbsDownIncrease: a canary thumbs-down share this much above stable's pauses.
	// Default 0.1.
	MaxThumbsDownIncrease float64 `json:"max_thumbs_down_increase,omitempty"`
	// MinSamples: canary jobs a window needs before it is judged. Default 20.
	MinSamples int `json:"min_samples,omitempty"`
	// MinFeedback: ratings a version needs before its thumbs-down share counts. Default 10.
	MinFeedback int `json:"min_feedback,omitempty"`
	// IgnoreCodes are failure codes caused by the input, not the model; they never
	// count as errors. Default: the pipeline's bad-input codes.
	IgnoreCodes []string `json:"ignore_codes,omitempty"`
}

// BadInputCodes are the pipeline's failure codes that blame the input (the
// processors package's Code* constants for undecodable, oversized or invalid input).
var BadInputCodes = []string{
	"bad_event", "invalid_image", "not_an_image", "unsupported_format", "image_too_large",
	"corrupt_image", "empty_image", "output_too_large", "invalid_params", "missing_object",
}

// WithDefaults fills in every unset threshold.
func (t Thresholds) WithDefaults() Thresholds {
	if t.MaxErrorRate == 0 {
		t.MaxErrorRate = 0.01
	}
	if t.MaxFallbackRate == 0 {
		t.MaxFallbackRate = 0.01
	}
	if t.LatencyRatio == 0 {
		t.LatencyRatio = 2
	}
	if t.LatencyStages == nil {
		t.LatencyStages = []string{"inference", "total"}
	}
	if t.LatencyFloorMS == 0 {
		t.LatencyFloorMS = 20
	}
	if t.MaxThumbsDownIncrease == 0 {
		t.MaxThumbsDownIncrease = 0.1
	}
	if t.MinSamples == 0 {
		t.MinSamples = 20
	}
	if t.MinFeedback == 0 {
		t.MinFeedback = 10
	}
	if t.IgnoreCodes == nil {
		t.IgnoreCodes = slices.Clone(BadInputCodes)
	}
	return t
}

// Validate reports the first threshold out of range.
func (t Thresholds) Validate() error {
	switch {
	case t.MaxErrorRate <= 0 || t.MaxErrorRate > 1:
		return fmt.Errorf("%w: max_error_rate %v must be in (0, 1]", ErrInvalid, t.MaxErrorRate)
	case t.MaxFallbackRate <= 0 || t.MaxFallbackRate > 1:
		return fmt.Errorf("%w: max_fallback_rate %v must be in (0, 1]", ErrInvalid, t.MaxFallbackRate)
	case t.LatencyRatio <= 1:
		return fmt.Errorf("%w: latency_ratio %v must be above 1", ErrInvalid, t.LatencyRatio)
	case t.LatencyFloorMS < 0:
		return fmt.Errorf("%w: latency_floor_ms %v must not be negative", ErrInvalid, t.LatencyFloorMS)
	case t.MaxThumbsDownIncrease <= 0 || t.MaxThumbsDownIncrease > 1:
		return fmt.Errorf("%w: max_thumbs_down_increase %v must be in (0, 1]", ErrInvalid, t.MaxThumbsDownIncrease)
	case t.MinSamples < 1:
		return fmt.Errorf("%w: min_samples %d must be at least 1", ErrInvalid, t.MinSamples)
	case t.MinFeedback < 1:
		return fmt.Errorf("%w: min_feedback %d must be at least 1", ErrInvalid, t.MinFeedback)
	}
	return nil
}

// DefaultSteps are the canary's shares, in percent, step by step.
var DefaultSteps = []int{5, 50, 100}

// DefaultHold is how long each step must stay clean before the next.
const DefaultHold = 10 * time.Minute

// Rollout is one move of a task's traffic from Stable to Canary, stored under the task
// in the bucket "rollouts".
type Rollout struct {
	ID     string       `json:"id"`
	Task   schemas.Task `json:"task"`
	Model  string       `json:"model"`
	Stable string       `json:"stable" doc:"the version serving the task when the rollout started"`
	Canary string       `json:"canary" doc:"the version being rolled out"`
	// Steps are the canary's shares in percent, increasing, the last one 100.
	Steps []int `json:"steps"`
	// HoldSeconds is how long each step must stay clean before the next.
	HoldSeconds float64    `json:"hold_s"`
	Thresholds  Thresholds `json:"thresholds"`
	State       State      `json:"state" enum:"pending,running,paused,promoted,rolled-back,aborted"`
	// Step indexes Steps (-1 before the first); Weight is the canary's current share.
	Step          int       `json:"step"`
	Weight        int       `json:"weight"`
	StepStartedAt time.Time `json:"step_started_at,omitzero"`
	// Canary and StableFigures are the last judged window's figures, for status views.
	CanaryFigures *Figures `json:"canary_figures,omitempty"`
	StableFigures *Figures `json:"stable_figures,omitempty"`
	// Baseline is stable's figures from the last window where it had enough jobs: the
	// step at 100% leaves stable none, so the canary is judged against this.
	Baseline  *Figures     `json:"baseline,omitempty"`
	Timeline  []Transition `json:"timeline"`
	CreatedBy string       `json:"created_by"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// Hold returns the hold per step.
func (r *Rollout) Hold() time.Duration { return time.Duration(r.HoldSeconds * float64(time.Second)) }

// Transition is one entry of a rollout's timeline.
type Transition struct {
	At     time.Time `json:"at"`
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	Step   int       `json:"step"`
	Weight int       `json:"weight" doc:"the canary's share after the transition, in percent"`
	// Reason says why, with the figures that decided it.
	Reason string `json:"reason"`
	// Actor is "controller" or the person who acted.
	Actor  string   `json:"actor"`
	Canary *Figures `json:"canary,omitempty"`
	Stable *Figures `json:"stable,omitempty"`
}

// ActorController is the actor of the controller's own transitions.
const ActorController = "controller"

// move records a transition of r to state `to` with the canary at weight.
func (r *Rollout) move(now time.Time, to State, weight int, actor, reason string, canary, stable *Figures) Transition {
	t := Transition{At: now, From: r.State, To: to, Step: r.Step, Weight: weight, Reason: reason, Actor: actor, Canary: canary, Stable: stable}
	r.State, r.Weight, r.UpdatedAt = to, weight, now
	r.Timeline = append(r.Timeline, t)
	return t
}

// Request asks for a rollout (Manager.Start).
type Request struct {
	Task schemas.Task `json:"task"`
	// To is the canary as model@version.
	To    string `json:"to"`
	Steps []int  `json:"steps,omitempty"`
	// Hold is a Go duration ("10m", "30s"); default 10m.
	Hold       string     `json:"hold,omitempty"`
	Thresholds Thresholds `json:"thresholds,omitzero"`
	By         string     `json:"-"`
}

// checkSteps accepts increasing shares in (0, 100] ending at 100.
func checkSteps(steps []int) error {
	if len(steps) == 0 {
		return fmt.Errorf("%w: no steps: give e.g. 5,50,100", ErrInvalid)
	}
	prev := 0
	for _, s := range steps {
		if s <= prev || s > 100 {
			return fmt.Errorf("%w: steps %v must increase within 1..100", ErrInvalid, steps)
		}
		prev = s
	}
	if prev != 100 {
		return fmt.Errorf("%w: steps %v must end at 100", ErrInvalid, steps)
	}
	return nil
}
