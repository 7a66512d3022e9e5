package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// ControllerConfig sets how often the controller looks and how long its lease lasts.
type ControllerConfig struct {
	// Holder names this controller in the lease (host and process, say).
	Holder string
	// Interval between looks at every rollout. Default 2s.
	Interval time.Duration
	// LockTTL: a controller that stops renewing loses the lease after this. Default 15s.
	LockTTL time.Duration
}

// Controller advances every rollout: it starts pending ones, judges each running step
// over its window (canary against stable, from Source) and promotes, pauses or rolls
// back, writing the routing table after each transition. Only the holder of the lease
// (Lock) acts, so any number may run (one per ingest replica); all state is in KV, so a
// new holder resumes where the last one stopped, mid-step included. Run blocks.
type Controller struct {
	Store  *Store
	Lock   *Lock
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

// Run looks at the rollouts every Interval while it holds the lease, until ctx is
// cancelled; it then gives the lease up. Errors of one look are logged and the next
// look tries again.
func (c *Controller) Run(ctx context.Context) error {
	interval := c.Config.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = c.Lock.Release(rctx)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	held := false
	for {
		ok, err := c.Tick(ctx)
		if err != nil && ctx.Err() == nil && c.Log != nil {
			c.Log.WithError(err).Warn("rollout controller: this look failed; trying again")
		}
		if ok != held && c.Log != nil {
			c.Log.WithField("holder", c.Config.Holder).WithField("leader", ok).Info("rollout controller lease changed")
		}
		held = ok
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick takes or renews the lease and, if held, advances every rollout once. It
// reports whether this controller held the lease.
func (c *Controller) Tick(ctx context.Context) (bool, error) {
	held, err := c.Lock.Acquire(ctx)
	if err != nil || !held {
		return false, err
	}
	list, err := c.Store.List(ctx)
	if err != nil {
		return true, err
	}
	var errs []error
	for _, r := range list {
		if err := c.advance(ctx, r.Task); err != nil && !errors.Is(err, ErrConflict) {
			errs = append(errs, fmt.Errorf("%s: %w", r.ID, err))
		}
	}
	return true, errors.Join(errs...)
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
