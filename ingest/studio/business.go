package studio

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// BusinessFunc answers the dashboard's business panels for the window ending now, from
// the analytics store (the ClickHouse sink). It may block on the queries; ctx carries
// the request's deadline. Return schemas.ErrAnalyticsOff when no store is configured.
type BusinessFunc func(ctx context.Context, window time.Duration) (*schemas.BusinessReport, error)

// businessTimeout bounds the analytics queries of one request.
const businessTimeout = 10 * time.Second

func (h *handler) business(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("window")
	if name == "" {
		name = "24h"
	}
	window, ok := schemas.BusinessWindows[name]
	if !ok {
		writeProblem(w, r, http.StatusBadRequest, "invalid_window", "window must be 24h, 7d or 30d")
		return
	}
	if h.cfg.Business == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_not_configured", "analytics not configured: the ClickHouse sink is off on this server")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), businessTimeout)
	defer cancel()
	b, err := h.cfg.Business(ctx, window)
	switch {
	case errors.Is(err, schemas.ErrAnalyticsOff):
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_not_configured", "analytics not configured: the ClickHouse sink is off on this server")
		return
	case err != nil:
		if h.cfg.Log != nil {
			h.cfg.Log.WithError(err).WithField("endpoint", "/ops/api/business").Error("analytics query failed")
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_unavailable", "the analytics store did not answer; the server log has the cause. Retry shortly.")
		return
	}
	b.Window = name
	normalise(b)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, b)
}

// normalise turns nil lists into empty ones, so the page never meets null.
func normalise(b *schemas.BusinessReport) {
	if b.Series == nil {
		b.Series = []schemas.BusinessBucket{}
	}
	if b.Models == nil {
		b.Models = []schemas.ModelStats{}
	}
	if b.Tenants == nil {
		b.Tenants = []schemas.TenantStats{}
	}
	if b.Errors == nil {
		b.Errors = []schemas.ErrorCount{}
	}
}
