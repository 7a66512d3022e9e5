package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// ControllerConfig sets how often the controller looks.
type ControllerConfig struct {
	// Interval between looks at every rollout. Default 2s.
	Interval time.Duration
}

// Controller advances every rollout: it starts pending ones, judges each running step
// over its window (canary against stable, from Source) and promotes, pauses or rolls
// back, writing the routing table after each transition. Run it under a lease
// (streams.Lease, as internal/app does) so that one replica acts at a time; all state is
// in KV, so a new holder resumes where the last one stopped, mid-step included. Every
// write is revision-checked, so a brief overlap of two holders moves a rollout once.
// Run blocks.
type Controller struct {
	Store  *Store
	Source Source
	Notify Notifier
	Log    logrus.FieldLogger
	Config ControllerConfig
	now    func() time.Time
}

func (c *Controller) clock() time.Time {
	if c.now != nil {
		return c.now().UTC()
	}
	return time.Now().UTC()
}

// Run looks at the rollouts every Interval until ctx is cancelled. Errors of one look
// are logged and the next look tries again.
func (c *Controller) Run(ctx context.Context) error {
	interval := c.Config.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.Tick(ctx); err != nil && ctx.Err() == nil && c.Log != nil {
			c.Log.WithError(err).Warn("rollout controller: this look failed; trying again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick advances every rollout once.
func (c *Controller) Tick(ctx context.Context) error {
	list, err := c.Store.List(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range list {
		if err := c.advance(ctx, r.Task); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, fmt.Errorf("%s: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

// advance moves task's rollout on by at most one transition and makes sure the
// routing table says what its state implies (mending a write a crash interrupted).
func (c *Controller) advance(ctx context.Context, task schemas.Task) error {
	r, rev, err := c.Store.Get(ctx, task)
	if err != nil {
		return err
	}
	if err := applyRouting(ctx, c.Store, r); err != nil {
		return err
	}
	now := c.clock()
	var t Transition
	switch r.State {
	case StatePending:
		r.Step, r.StepStartedAt = 0, now
		t = r.move(now, StateRunning, r.Steps[0], ActorController,
			fmt.Sprintf("step 1 of %d: %d%% of unversioned jobs to %s", len(r.Steps), r.Steps[0], r.Canary), nil, nil)
	case StateRunning:
		tally, err := c.Source.Window(ctx, r.Task, r.Model, r.StepStartedAt, r.Thresholds.IgnoreCodes)
		if err != nil {
			return err
		}
		canary, stable := tally.Figures(r.Canary), tally.Figures(r.Stable)
		// Defaults fill in thresholds added after the rollout was stored.
		verdict, why := Judge(r.Thresholds.WithDefaults(), canary, stable, r.Baseline, now.Sub(r.StepStartedAt) >= r.Hold())
		r.CanaryFigures, r.StableFigures = canary, stable
		switch verdict {
		case Wait:
			return nil
		case Rollback:
			t = r.move(now, StateRolledBack, 0, ActorController, "rolled back at "+fmt.Sprint(r.Weight)+"%: "+why, canary, stable)
		case Pause:
			t = r.move(now, StatePaused, r.Weight, ActorController, "paused at "+fmt.Sprint(r.Weight)+"%: "+why, canary, stable)
		case Advance:
			if stable.Jobs >= r.Thresholds.MinSamples {
				r.Baseline = stable
			}
			if r.Step == len(r.Steps)-1 {
				t = r.move(now, StatePromoted, 100, ActorController, "promoted: "+why, canary, stable)
				break
			}
			r.Step++
			r.StepStartedAt = now
			t = r.move(now, StateRunning, r.Steps[r.Step], ActorController,
				fmt.Sprintf("step %d of %d: %d%% to %s after a %s", r.Step+1, len(r.Steps), r.Steps[r.Step], r.Canary, why), canary, stable)
		}
	default:
		return nil // paused or ended: nothing to judge
	}
	if _, err := c.Store.put(ctx, r, rev); err != nil {
		return err // a conflict (an operator acted meanwhile) is judged again next look
	}
	if err := applyRouting(ctx, c.Store, r); err != nil {
		return err
	}
	if c.Notify != nil {
		c.Notify.Notify(ctx, r, t)
	}
	return nil
}
