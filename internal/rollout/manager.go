package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// Manager is what people act through (the CLI and the admin API): start, pause,
// resume, abort and read rollouts. Every change is a revision-checked write followed
// by the routing table it implies and a notification. Safe for concurrent use.
type Manager struct {
	Store   *Store
	Catalog *models.Catalog
	// Source measures live figures for Live; nil leaves them out.
	Source Source
	Notify Notifier
	now    func() time.Time
}

func (m *Manager) clock() time.Time {
	if m.now != nil {
		return m.now().UTC()
	}
	return time.Now().UTC()
}

// Start creates a pending rollout of req.To for req.Task; the controller begins its
// first step on its next tick. The stable version is the one that serves the task's
// unversioned jobs now: the heaviest in the task's routing table, else the default.
func (m *Manager) Start(ctx context.Context, req Request) (*Rollout, error) {
	model, canary, ok := strings.Cut(req.To, "@")
	if !ok || model == "" || canary == "" {
		return nil, fmt.Errorf("%w: --to %q must be model@version, e.g. realesrgan@animevideov3", ErrInvalid, req.To)
	}
	spec, err := m.Catalog.Get(model, canary)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not in the catalog (studio models lists it)", ErrInvalid, req.To)
	}
	if req.Task == "" {
		req.Task = spec.Task
	}
	if spec.Task != req.Task {
		return nil, fmt.Errorf("%w: %s serves %s, not %s", ErrInvalid, req.To, spec.Task, req.Task)
	}
	stable, err := m.stable(ctx, req.Task, model)
	if err != nil {
		return nil, err
	}
	if stable == canary {
		return nil, fmt.Errorf("%w: %s already serves %s", ErrInvalid, req.To, req.Task)
	}
	steps := req.Steps
	if len(steps) == 0 {
		steps = slices.Clone(DefaultSteps)
	}
	if err := checkSteps(steps); err != nil {
		return nil, err
	}
	hold := DefaultHold
	if req.Hold != "" {
		if hold, err = time.ParseDuration(req.Hold); err != nil || hold <= 0 {
			return nil, fmt.Errorf("%w: hold %q must be a positive duration such as 10m or 30s", ErrInvalid, req.Hold)
		}
	}
	th := req.Thresholds.WithDefaults()
	if err := th.Validate(); err != nil {
		return nil, err
	}
	by := req.By
	if by == "" {
		by = "unknown"
	}
	now := m.clock()
	r := &Rollout{
		ID: string(req.Task) + "-" + now.Format("20060102T150405.000Z"), Task: req.Task, Model: model, Stable: stable, Canary: canary,
		Steps: steps, HoldSeconds: hold.Seconds(), Thresholds: th, State: StatePending, Step: -1,
		CreatedBy: by, CreatedAt: now, UpdatedAt: now, Timeline: []Transition{},
	}
	cur, rev, err := m.Store.Get(ctx, req.Task)
	switch {
	case errors.Is(err, ErrNotFound):
		rev = 0
	case err != nil:
		return nil, err
	case !cur.State.Final():
		return nil, fmt.Errorf("%w: %s (%s → %s) is %s; abort it first", ErrActive, cur.ID, cur.Stable, cur.Canary, cur.State)
	}
	t := Transition{At: now, To: StatePending, Step: -1, Reason: fmt.Sprintf("requested: %s@%s → %s in steps %v, hold %s", model, stable, canary, steps, hold), Actor: by}
	r.Timeline = append(r.Timeline, t)
	if _, err := m.Store.put(ctx, r, rev); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, fmt.Errorf("%w: another rollout of %s was started at the same time", ErrActive, req.Task)
		}
		return nil, err
	}
	m.notify(ctx, r, t)
	return r, nil
}

// stable is the version serving task's unversioned jobs of model now.
func (m *Manager) stable(ctx context.Context, task schemas.Task, model string) (string, error) {
	if t, ok, err := m.Store.Routing(ctx, task); err != nil {
		return "", err
	} else if ok && t.Model == model {
		best, w := "", 0
		for v, n := range t.Weights {
			if n > w || n == w && v < best {
				best, w = v, n
			}
		}
		if best != "" {
			return best, nil
		}
	}
	for _, s := range m.Catalog.All() {
		if s.Task == task && m.Catalog.IsDefault(s) {
			if s.Name != model {
				return "", fmt.Errorf("%w: %s's default model is %s; a rollout moves between versions of one model", ErrInvalid, task, s.ID())
			}
			return s.Version, nil
		}
	}
	return "", fmt.Errorf("%w: no model serves %s", ErrInvalid, task)
}

// Pause holds task's rollout at its current weights until Resume.
func (m *Manager) Pause(ctx context.Context, task schemas.Task, by string) (*Rollout, error) {
	return m.change(ctx, task, func(r *Rollout, now time.Time) (Transition, error) {
		if r.State != StateRunning && r.State != StatePending {
			return Transition{}, fmt.Errorf("%w: %s is %s; only a pending or running rollout pauses", ErrState, r.ID, r.State)
		}
		return r.move(now, StatePaused, r.Weight, by, "paused by "+by, nil, nil), nil
	})
}

// Resume restarts a paused rollout's current step with a fresh window and hold.
func (m *Manager) Resume(ctx context.Context, task schemas.Task, by string) (*Rollout, error) {
	return m.change(ctx, task, func(r *Rollout, now time.Time) (Transition, error) {
		if r.State != StatePaused {
			return Transition{}, fmt.Errorf("%w: %s is %s; only a paused rollout resumes", ErrState, r.ID, r.State)
		}
		if r.Step < 0 {
			return r.move(now, StatePending, 0, by, "resumed by "+by, nil, nil), nil
		}
		r.StepStartedAt = now
		return r.move(now, StateRunning, r.Weight, by, fmt.Sprintf("resumed by %s at %d%%; the step's hold starts again", by, r.Weight), nil, nil), nil
	})
}

// Abort ends task's rollout and sends every unversioned job back to stable. Jobs
// already routed to the canary finish on it.
func (m *Manager) Abort(ctx context.Context, task schemas.Task, by string) (*Rollout, error) {
	return m.change(ctx, task, func(r *Rollout, now time.Time) (Transition, error) {
		if r.State.Final() {
			return Transition{}, fmt.Errorf("%w: %s has already ended (%s)", ErrState, r.ID, r.State)
		}
		return r.move(now, StateAborted, 0, by, "aborted by "+by+"; all unversioned jobs back to "+r.Stable, nil, nil), nil
	})
}

// Get returns task's latest rollout.
func (m *Manager) Get(ctx context.Context, task schemas.Task) (*Rollout, error) {
	r, _, err := m.Store.Get(ctx, task)
	return r, err
}

// List returns every task's latest rollout.
func (m *Manager) List(ctx context.Context) ([]Rollout, error) { return m.Store.List(ctx) }

// Live returns the canary's and stable's figures over the current step's window (since
// the step started; for an ended rollout, since its last step started).
func (m *Manager) Live(ctx context.Context, r *Rollout) (canary, stable *Figures, err error) {
	if m.Source == nil || r.StepStartedAt.IsZero() {
		return nil, nil, nil
	}
	t, err := m.Source.Window(ctx, r.Task, r.Model, r.StepStartedAt, r.Thresholds.IgnoreCodes)
	if err != nil {
		return nil, nil, err
	}
	return t.Figures(r.Canary), t.Figures(r.Stable), nil
}

// change applies fn to task's rollout with a revision check, retrying on a concurrent
// write, then writes the routing table the new state implies and notifies.
func (m *Manager) change(ctx context.Context, task schemas.Task, fn func(r *Rollout, now time.Time) (Transition, error)) (*Rollout, error) {
	for attempt := 0; ; attempt++ {
		r, rev, err := m.Store.Get(ctx, task)
		if err != nil {
			return nil, err
		}
		t, err := fn(r, m.clock())
		if err != nil {
			return nil, err
		}
		if _, err := m.Store.put(ctx, r, rev); err != nil {
			if errors.Is(err, ErrConflict) && attempt < 10 {
				continue
			}
			return nil, err
		}
		if err := applyRouting(ctx, m.Store, r); err != nil {
			return nil, err
		}
		m.notify(ctx, r, t)
		return r, nil
	}
}

func (m *Manager) notify(ctx context.Context, r *Rollout, t Transition) {
	if m.Notify != nil {
		m.Notify.Notify(ctx, r, t)
	}
}

// Weights returns the routing table r's state implies; nil while it is pending.
func (r *Rollout) Weights() map[string]int {
	switch r.State {
	case StatePending:
		if r.Step < 0 {
			return nil
		}
	case StatePromoted:
		return map[string]int{r.Stable: 0, r.Canary: 100}
	case StateRolledBack, StateAborted:
		return map[string]int{r.Stable: 100, r.Canary: 0}
	}
	return map[string]int{r.Stable: 100 - r.Weight, r.Canary: r.Weight}
}

// applyRouting writes the routing table r implies, unless it is stored already.
func applyRouting(ctx context.Context, s *Store, r *Rollout) error {
	w := r.Weights()
	if w == nil {
		return nil
	}
	if cur, ok, err := s.Routing(ctx, r.Task); err != nil {
		return err
	} else if ok && cur.Model == r.Model && cur.Rollout == r.ID && sameWeights(cur.Weights, w) {
		return nil
	}
	return s.SetRouting(ctx, r.Task, r.Model, r.ID, w)
}

func sameWeights(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
