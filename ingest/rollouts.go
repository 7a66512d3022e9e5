package ingest

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/rollout"
	"github.com/creativeai-studio/studio/schemas"
)

// WithRollouts serves the admin rollout routes (/v2/admin/rollouts) through m.
// Without it they answer 503.
func WithRollouts(m *rollout.Manager) Option { return func(s *Service) { s.rollouts = m } }

// Catalog returns the catalog the service routes jobs by.
func (s *Service) Catalog() *models.Catalog { return s.catalog }

// RolloutRequest is the body of POST /v2/admin/rollouts.
type RolloutRequest struct {
	Task       schemas.Task        `json:"task,omitempty" doc:"the task whose unversioned jobs move; default: the target version's task"`
	To         string              `json:"to" minLength:"3" doc:"the canary as model@version, e.g. realesrgan@animevideov3"`
	Steps      []int               `json:"steps,omitempty" doc:"the canary's shares in percent, increasing, ending at 100; default 5,50,100"`
	Hold       string              `json:"hold,omitempty" doc:"how long each step must stay clean (a Go duration: 10m, 30s); default 10m"`
	Thresholds *rollout.Thresholds `json:"thresholds,omitempty" doc:"unset fields take the defaults: errors 1%, fallbacks 1%, latency 2x, 20 jobs"`
}

// RolloutView is one rollout with the figures of its current window and the routing
// table replicas route by.
type RolloutView struct {
	rollout.Rollout
	// Live are the canary's and stable's figures since the current step began.
	Live    *LiveFigures   `json:"live,omitempty"`
	Routing *rollout.Table `json:"routing,omitempty"`
}

// LiveFigures puts the two versions side by side.
type LiveFigures struct {
	Canary *rollout.Figures `json:"canary"`
	Stable *rollout.Figures `json:"stable"`
}

// RolloutList is the body of GET /v2/admin/rollouts.
type RolloutList struct {
	Rollouts []rollout.Rollout `json:"rollouts"`
}

type rolloutPath struct {
	Task string `path:"task" doc:"the task, e.g. upscale"`
}

func (s *Service) registerRolloutRoutes(api huma.API) {
	v2 := versioned{version: "v2", latest: true}
	tags := []string{"rollouts"}
	errs := []int{401, 403, 404, 409, 422, 503}
	// Every rollout route is for operators (admins of the operator tenant, declared: a
	// rollout moves every tenant's jobs); operator checks that this process manages
	// rollouts.
	admin := declare(operator())
	operator := func(context.Context) error {
		if s.rollouts == nil {
			return problem(http.StatusServiceUnavailable, "unavailable", "this server does not manage rollouts")
		}
		return nil
	}
	route(s, api, v2, huma.Operation{OperationID: "list-rollouts", Method: http.MethodGet, Path: "/admin/rollouts", Tags: tags,
		Summary: "List rollouts", Description: "Every task's latest rollout with its timeline. Admin scope.", Errors: errs, Metadata: admin,
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[RolloutList], error) {
		if err := operator(ctx); err != nil {
			return nil, err
		}
		list, err := s.rollouts.List(ctx)
		if err != nil {
			return nil, s.rolloutProblem(err)
		}
		if list == nil {
			list = []rollout.Rollout{}
		}
		return &bodyOutput[RolloutList]{Status: http.StatusOK, Body: RolloutList{Rollouts: list}}, nil
	})
	route(s, api, v2, huma.Operation{OperationID: "start-rollout", Method: http.MethodPost, Path: "/admin/rollouts", Tags: tags,
		Summary:       "Start a rollout",
		Description:   "Moves a task's unversioned jobs to another version of its model in steps; the controller judges each step from the pipeline's results and promotes, pauses or rolls back by itself. One active rollout per task. Admin scope.",
		DefaultStatus: http.StatusCreated, Errors: errs, Metadata: admin,
	}, func(ctx context.Context, in *struct{ Body RolloutRequest }) (*bodyOutput[RolloutView], error) {
		if err := operator(ctx); err != nil {
			return nil, err
		}
		req := rollout.Request{Task: in.Body.Task, To: in.Body.To, Steps: in.Body.Steps, Hold: in.Body.Hold, By: s.principal(ctx).User}
		if in.Body.Thresholds != nil {
			req.Thresholds = *in.Body.Thresholds
		}
		r, err := s.rollouts.Start(ctx, req)
		if err != nil {
			return nil, s.rolloutProblem(err)
		}
		return &bodyOutput[RolloutView]{Status: http.StatusCreated, Body: RolloutView{Rollout: *r}}, nil
	})
	route(s, api, v2, huma.Operation{OperationID: "get-rollout", Method: http.MethodGet, Path: "/admin/rollouts/{task}", Tags: tags,
		Summary: "A task's rollout", Description: "The latest rollout of the task, its timeline, the routing table and both versions' figures over the current step's window. Admin scope.", Errors: errs, Metadata: admin,
	}, func(ctx context.Context, in *rolloutPath) (*bodyOutput[RolloutView], error) {
		if err := operator(ctx); err != nil {
			return nil, err
		}
		v, err := s.rolloutView(ctx, schemas.Task(in.Task))
		if err != nil {
			return nil, err
		}
		return &bodyOutput[RolloutView]{Status: http.StatusOK, Body: *v}, nil
	})
	for _, a := range []struct {
		verb, summary string
		fn            func(*rollout.Manager, context.Context, schemas.Task, string) (*rollout.Rollout, error)
	}{
		{"pause", "Pause a rollout: weights stay, nothing advances", (*rollout.Manager).Pause},
		{"resume", "Resume a paused rollout: its step's hold starts again", (*rollout.Manager).Resume},
		{"abort", "Abort a rollout: every unversioned job goes back to stable; jobs on the canary finish", (*rollout.Manager).Abort},
	} {
		route(s, api, v2, huma.Operation{OperationID: a.verb + "-rollout", Method: http.MethodPost, Path: "/admin/rollouts/{task}/" + a.verb, Tags: tags,
			Summary: a.summary, Description: "Admin scope. Audited, and sent to the rollout webhook.", Errors: errs, Metadata: admin,
		}, func(ctx context.Context, in *rolloutPath) (*bodyOutput[RolloutView], error) {
			if err := operator(ctx); err != nil {
				return nil, err
			}
			r, err := a.fn(s.rollouts, ctx, schemas.Task(in.Task), s.principal(ctx).User)
			if err != nil {
				return nil, s.rolloutProblem(err)
			}
			return &bodyOutput[RolloutView]{Status: http.StatusOK, Body: RolloutView{Rollout: *r}}, nil
		})
	}
}

// rolloutView reads task's rollout with its live figures and routing table.
func (s *Service) rolloutView(ctx context.Context, task schemas.Task) (*RolloutView, error) {
	r, err := s.rollouts.Get(ctx, task)
	if err != nil {
		return nil, s.rolloutProblem(err)
	}
	v := &RolloutView{Rollout: *r}
	if c, st, err := s.rollouts.Live(ctx, r); err != nil {
		s.log.WithError(err).WithField("rollout", r.ID).Warn("could not measure the rollout's window")
	} else if c != nil {
		v.Live = &LiveFigures{Canary: c, Stable: st}
	}
	if t, ok, err := s.rollouts.Store.Routing(ctx, task); err == nil && ok {
		v.Routing = t
	}
	return v, nil
}

// rolloutProblem maps the rollout package's errors to problem details.
func (s *Service) rolloutProblem(err error) error {
	msg := strings.TrimPrefix(err.Error(), "rollout: ")
	switch {
	case errors.Is(err, rollout.ErrNotFound):
		return problem(http.StatusNotFound, "rollout_not_found", msg+": POST /v2/admin/rollouts starts one")
	case errors.Is(err, rollout.ErrInvalid):
		return problem(http.StatusUnprocessableEntity, "invalid_rollout", msg)
	case errors.Is(err, rollout.ErrActive):
		return problem(http.StatusConflict, "rollout_active", msg)
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrConflict):
		return problem(http.StatusConflict, "rollout_state", msg)
	}
	return s.asProblem(err, "rollouts")
}
