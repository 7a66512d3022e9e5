package ingest

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/internal/auth"
)

// WebhookSecretView answers GET /v2/admin/webhook-secret and its rotation: the
// caller's tenant's webhook signing secrets, the current one first.
type WebhookSecretView struct {
	Tenant     string `json:"tenant"`
	Generation int    `json:"generation" doc:"the current secret's generation; 0 until the tenant's first rotation"`
	Secret     string `json:"secret" doc:"the current signing secret: verify Studio-Signature with it"`
	// Previous is set during a rotation's window, when deliveries carry a v1 under each.
	Previous      string     `json:"previous,omitempty" doc:"the secret before the last rotation; deliveries are signed with it too until previous_until"`
	PreviousUntil *time.Time `json:"previous_until,omitempty"`
}

// actionWebhookRotate names a tenant's webhook secret rotation in audit events.
const actionWebhookRotate = "webhook-secret-rotate"

// registerWebhookSecretRoutes adds the tenant admin's view and rotation of its own
// webhook signing secret. Each tenant's secret is derived from the configured secret,
// its tenant id and its generation, so no tenant's admin can read or change another's.
func (s *Service) registerWebhookSecretRoutes(api huma.API) {
	v2 := versioned{version: "v2", latest: true}
	tags := []string{"webhooks"}
	errs := []int{401, 403, 503}
	// Both routes are for the tenant's admins (declared); ready checks that webhooks are on.
	ready := func(context.Context) error {
		if s.cfg.WebhookSecret == "" || s.webhookSecrets == nil {
			return problem(http.StatusServiceUnavailable, "webhooks_off", "webhooks are off on this server (no --webhook-secret)")
		}
		return nil
	}
	view := func(ctx context.Context, tenant string, g auth.WebhookGeneration) *bodyOutput[WebhookSecretView] {
		v := WebhookSecretView{Tenant: tenant, Generation: g.Current, Secret: auth.WebhookSecret(s.cfg.WebhookSecret, tenant, g.Current)}
		if gens := g.Valid(time.Now()); len(gens) > 1 {
			until := g.PreviousUntil
			v.Previous, v.PreviousUntil = auth.WebhookSecret(s.cfg.WebhookSecret, tenant, gens[1]), &until
		}
		return &bodyOutput[WebhookSecretView]{Status: http.StatusOK, Body: v}
	}
	route(s, api, v2, huma.Operation{OperationID: "get-webhook-secret", Method: http.MethodGet, Path: "/admin/webhook-secret", Tags: tags,
		Summary:     "Your tenant's webhook signing secret",
		Description: "The secret that signs your tenant's webhook deliveries (Studio-Signature), and the previous one while a rotation lasts. Admin scope; a tenant admin sees only its own tenant's.",
		Errors:      errs, Metadata: declare(scoped(auth.ScopeAdmin)),
	}, func(ctx context.Context, _ *struct{}) (*bodyOutput[WebhookSecretView], error) {
		if err := ready(ctx); err != nil {
			return nil, err
		}
		tenant, _ := s.caller(ctx)
		g, err := s.webhookSecrets.Get(ctx, tenant)
		if err != nil {
			return nil, s.asProblem(err, "webhook secret")
		}
		return view(ctx, tenant, g), nil
	})
	route(s, api, v2, huma.Operation{OperationID: "rotate-webhook-secret", Method: http.MethodPost, Path: "/admin/webhook-secret/rotate", Tags: tags,
		Summary:     "Rotate your tenant's webhook signing secret",
		Description: "Starts a new secret for your tenant only. For window (default 24h; 0s ends the old one at once, for a leaked secret) deliveries carry a signature under each, so receivers can switch without losing one. Admin scope; audited.",
		Errors:      append(errs, 422), Metadata: declare(scoped(auth.ScopeAdmin).audited(actionWebhookRotate)),
	}, func(ctx context.Context, in *struct {
		Window string `query:"window" doc:"how long the previous secret keeps signing, e.g. 24h (default) or 0s"`
	}) (*bodyOutput[WebhookSecretView], error) {
		if err := ready(ctx); err != nil {
			s.audit(ctx, actionWebhookRotate, "webhook-secret", auth.ResultDenied)
			return nil, err
		}
		window := time.Duration(0)
		if in.Window != "" {
			d, err := time.ParseDuration(in.Window)
			if err != nil || d < 0 || d > 30*24*time.Hour {
				return nil, problem(422, "invalid_window", "window must be a duration from 0s to 720h, e.g. 24h",
					FieldProblem{Field: "window", Constraint: "format", Message: "a duration from 0s to 720h"})
			}
			window = d
			if d == 0 {
				window = -1 // ends the previous secret at once
			}
		}
		tenant, _ := s.caller(ctx)
		g, err := s.webhookSecrets.Rotate(ctx, tenant, window)
		if err != nil {
			s.audit(ctx, actionWebhookRotate, "webhook-secret", auth.ResultError)
			return nil, s.asProblem(err, "rotate webhook secret")
		}
		s.audit(ctx, actionWebhookRotate, "webhook-secret", auth.ResultAllowed)
		return view(ctx, tenant, g), nil
	})
}
