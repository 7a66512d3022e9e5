package studio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

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
	res, err := h.cfg.SQL(r.Context(), req.SQL)
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
