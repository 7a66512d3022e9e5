package studio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// SQLFunc runs one read-only analyst query (sink.SQL). It returns an error wrapping
// schemas.ErrBadQuery for a query refused or failed by its own fault, and
// schemas.ErrAnalyticsOff without an analytics store.
type SQLFunc func(ctx context.Context, query string) (*schemas.SQLResult, error)

// maxSQLBody bounds a POST /ops/api/sql body: the query (64 KiB) in JSON.
const maxSQLBody = 80 << 10

// sql answers POST /ops/api/sql: {"sql": "SELECT …"} → schemas.SQLResult.
func (h *handler) sql(w http.ResponseWriter, r *http.Request) {
	if h.cfg.SQL == nil {
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_not_configured", "analytics not configured: the ClickHouse sink is off on this server")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported_media_type", `send {"sql": "SELECT …"} as application/json`)
		return
	}
	var req schemas.SQLRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxSQLBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeProblem(w, r, http.StatusBadRequest, "invalid_body", `the body must be {"sql": "SELECT …"} under 64 KiB: `+err.Error())
		return
	}
	res, err := h.sqlc.get(r.Context(), req.SQL)
	switch {
	case errors.Is(err, schemas.ErrAnalyticsOff):
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_not_configured", "analytics not configured: the ClickHouse sink is off on this server")
		return
	case errors.Is(err, schemas.ErrBadQuery):
		writeProblem(w, r, http.StatusBadRequest, "bad_query", err.Error())
		return
	case err != nil:
		if h.cfg.Log != nil {
			h.cfg.Log.WithError(err).WithField("endpoint", "/ops/api/sql").Error("analyst query failed")
		}
		writeProblem(w, r, http.StatusServiceUnavailable, "analytics_unavailable", "the analytics store did not answer; the server log has the cause. Retry shortly.")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
}

// cookbook answers GET /ops/api/sql/cookbook: the analyst queries, one click away in
// the dashboard's SQL box.
func (h *handler) cookbook(w http.ResponseWriter, r *http.Request) {
	list := h.cfg.Cookbook
	if list == nil {
		list = []schemas.SQLQuery{}
	}
	writeJSON(w, http.StatusOK, list)
}

// SQLTTL is how long an analyst query's result is served from memory by default
// (Config.SQLTTL): the same statement sent again within it, by anyone, does not reach
// the analytics store.
const SQLTTL = 30 * time.Second

// sqlCacheEntries bounds the results kept (each at most schemas.MaxRows rows).
const sqlCacheEntries = 64

// sqlCache keeps the results of recent analyst queries by their exact text. Callers of
// the same statement wait for one run; failures are not kept. Safe for concurrent use.
type sqlCache struct {
	fn     SQLFunc
	ttl    time.Duration // <= 0: every call queries
	now    func() time.Time
	caches *Caches // drops and holds (erasure); nil: never

	mu      sync.Mutex
	entries map[string]*sqlEntry
}

type sqlEntry struct {
	mu  sync.Mutex
	res *schemas.SQLResult // never mutated once stored
	at  time.Time
	gen uint64 // the Caches generation res was computed in
}

func newSQLCache(fn SQLFunc, ttl time.Duration, caches *Caches) *sqlCache {
	return &sqlCache{fn: fn, ttl: ttl, now: time.Now, caches: caches, entries: map[string]*sqlEntry{}}
}

// get returns the result of query, running it unless a result younger than the TTL is
// kept. Expired entries are dropped when the cache is full; when all are fresh, the
// query runs uncached.
func (c *sqlCache) get(ctx context.Context, query string) (*schemas.SQLResult, error) {
	if c.ttl <= 0 {
		return c.fn(ctx, query)
	}
	c.mu.Lock()
	e := c.entries[query]
	if e == nil {
		if len(c.entries) >= sqlCacheEntries {
			for q, old := range c.entries {
				if old.mu.TryLock() {
					if old.res == nil || c.now().Sub(old.at) >= c.ttl {
						delete(c.entries, q)
					}
					old.mu.Unlock()
				}
			}
		}
		if len(c.entries) >= sqlCacheEntries {
			c.mu.Unlock()
			return c.fn(ctx, query)
		}
		e = &sqlEntry{}
		c.entries[query] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	gen, keep := c.caches.generation()
	if e.res != nil && e.gen == gen && c.now().Sub(e.at) < c.ttl {
		return e.res, nil
	}
	res, err := c.fn(ctx, query)
	if err != nil {
		return nil, err
	}
	if keep && c.caches.current(gen) {
		e.res, e.at, e.gen = res, c.now(), gen
	}
	return res, nil
}
