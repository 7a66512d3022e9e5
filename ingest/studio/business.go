package studio

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// BusinessFunc answers the dashboard's business panels for the window ending now, from
// the analytics store (the ClickHouse sink). It may block on the queries; ctx carries
// the request's deadline. Return ErrAnalyticsOff when no store is configured.
type BusinessFunc func(ctx context.Context, window time.Duration) (*Business, error)

// ErrAnalyticsOff means the analytics store is not configured: the endpoint answers 503
// and the dashboard shows "analytics not configured".
var ErrAnalyticsOff = errors.New("studio: analytics not configured")

// Windows are the periods the dashboard offers, by their query value.
var Windows = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// businessTimeout bounds the analytics queries of one request.
const businessTimeout = 10 * time.Second

// Business is GET /ops/api/business?window=24h|7d|30d. Counts cover jobs submitted in
// [From, To). Lists may be empty, never null.
type Business struct {
	// Window is the query value ("24h").
	Window string    `json:"window"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Totals Totals    `json:"totals"`
	// Series is jobs over time: hourly buckets for 24h, daily ones otherwise.
	Series []Bucket `json:"series"`
	// Models compares model versions (canaries against their defaults).
	Models []ModelStats `json:"models"`
	// Tenants are the busiest tenants, at most 10, most jobs first.
	Tenants []TenantStats `json:"tenants"`
	// Errors are failed jobs by error code and stage, most frequent first.
	Errors []ErrorCount `json:"errors"`
}

// Totals are the window's headline numbers.
type Totals struct {
	Jobs      int64 `json:"jobs"`
	Succeeded int64 `json:"succeeded"`
	Failed    int64 `json:"failed"`
	Cancelled int64 `json:"cancelled"`
	// CacheHits are jobs answered from the result cache at ingest.
	CacheHits  int64 `json:"cache_hits"`
	Users      int64 `json:"users"`
	ThumbsUp   int64 `json:"thumbs_up"`
	ThumbsDown int64 `json:"thumbs_down"`
	// InputBytes is the total size of the uploaded images.
	InputBytes int64 `json:"input_bytes"`
}

// Bucket is one period of Series.
type Bucket struct {
	Start     time.Time `json:"start"`
	Jobs      int64     `json:"jobs"`
	Succeeded int64     `json:"succeeded"`
	Failed    int64     `json:"failed"`
}

// ModelStats is one model version's jobs, latency and ratings.
type ModelStats struct {
	Task    string `json:"task"`
	Model   string `json:"model"`
	Version string `json:"version"`
	Jobs    int64  `json:"jobs"`
	Failed  int64  `json:"failed"`
	// P50MS and P95MS are end-to-end job durations (submitted to finished), succeeded
	// jobs only.
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	ThumbsUp   int64   `json:"thumbs_up"`
	ThumbsDown int64   `json:"thumbs_down"`
}

// TenantStats is one tenant's use.
type TenantStats struct {
	Tenant     string `json:"tenant"`
	Jobs       int64  `json:"jobs"`
	Users      int64  `json:"users"`
	InputBytes int64  `json:"input_bytes"`
}

// ErrorCount is how often jobs failed with one code at one stage.
type ErrorCount struct {
	Code  string `json:"code"`
	Stage string `json:"stage"`
	Count int64  `json:"count"`
}

func (h *handler) business(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("window")
	if name == "" {
		name = "24h"
	}
	window, ok := Windows[name]
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
	case errors.Is(err, ErrAnalyticsOff):
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
func normalise(b *Business) {
	if b.Series == nil {
		b.Series = []Bucket{}
	}
	if b.Models == nil {
		b.Models = []ModelStats{}
	}
	if b.Tenants == nil {
		b.Tenants = []TenantStats{}
	}
	if b.Errors == nil {
		b.Errors = []ErrorCount{}
	}
}
