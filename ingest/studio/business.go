package studio

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// BusinessFunc answers the dashboard's business panels for the window ending now, from
// the analytics store (the ClickHouse sink). It may block on the queries; ctx carries
// the request's deadline. Return schemas.ErrAnalyticsOff when no store is configured.
type BusinessFunc func(ctx context.Context, window time.Duration) (*schemas.BusinessReport, error)

// businessTimeout bounds the analytics queries of one refresh.
const businessTimeout = 10 * time.Second

// BusinessTTL is how long a window's report is served from memory by default
// (Config.BusinessTTL): whatever the request rate, the analytics store sees at most one
// query per window per TTL.
const BusinessTTL = 60 * time.Second

// businessCache holds the last report of each window. One refresh per window runs at a
// time (callers of the same window wait for it), and a failed refresh is not kept.
// Safe for concurrent use.
type businessCache struct {
	fn     BusinessFunc
	ttl    time.Duration // <= 0: every call queries
	now    func() time.Time
	caches *Caches // drops and holds (erasure); nil: never

	mu      sync.Mutex
	windows map[string]*windowEntry
}

// windowEntry is one window's report; mu serialises its refreshes.
type windowEntry struct {
	mu     sync.Mutex
	report *schemas.BusinessReport // normalised, Window set; never mutated once stored
	at     time.Time
	gen    uint64 // the Caches generation report was computed in
}

func newBusinessCache(fn BusinessFunc, ttl time.Duration, caches *Caches) *businessCache {
	return &businessCache{fn: fn, ttl: ttl, now: time.Now, caches: caches, windows: map[string]*windowEntry{}}
}

// get returns the report for the named window, querying fn when the cached one is
// missing or older than the cache's TTL. It blocks while another caller refreshes the same
// window. The query outlives a caller that goes away (bounded by businessTimeout), so
// the callers waiting behind it still get its answer.
func (c *businessCache) get(ctx context.Context, name string, window time.Duration) (*schemas.BusinessReport, error) {
	c.mu.Lock()
	e := c.windows[name]
	if e == nil {
		e = &windowEntry{}
		c.windows[name] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	gen, keep := c.caches.generation()
	if e.report != nil && e.gen == gen && c.now().Sub(e.at) < c.ttl {
		return e.report, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), businessTimeout)
	defer cancel()
	b, err := c.fn(qctx, window)
	if err != nil {
		return nil, err
	}
	b.Window = name
	normalise(b)
	if keep && c.caches.current(gen) {
		e.report, e.at, e.gen = b, c.now(), gen
	}
	return b, nil
}

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
	if h.biz == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_not_configured", "analytics not configured: the ClickHouse sink is off on this server")
		return
	}
	b, err := h.biz.get(r.Context(), name, window)
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
