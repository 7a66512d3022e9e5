package ingest_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/ingest/studio"
	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/schemas"
)

// requireRateLimited checks a 429 rate_limited problem with a Retry-After in seconds.
func requireRateLimited(t *testing.T, r authResponse, what string) {
	t.Helper()
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s: %s", what, r.body)
	require.Equal(t, "rate_limited", problemCode(t, r.body), what)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), what)
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "%s: Retry-After %q", what, r.header.Get("Retry-After"))
	require.Positive(t, secs, what)
	require.LessOrEqual(t, secs, 3660, what) // the window is an hour and one slot (a minute)
}

// An operator floods the analytics routes: each caller has a budget of its own
// (--analytics-rate-limit), over which the business report and the SQL box answer 429
// before any query runs or any body is read, while another operator and the caller's
// job budget are untouched. Identical SQL within the cache's TTL runs once.
func TestAnalyticsRoutesAreRateLimitedPerCallerAndCached(t *testing.T) {
	var bizQueries, sqlQueries atomic.Int32
	business := func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
		bizQueries.Add(1)
		return &schemas.BusinessReport{}, nil
	}
	sql := func(_ context.Context, q string) (*schemas.SQLResult, error) {
		sqlQueries.Add(1)
		return &schemas.SQLResult{Columns: []schemas.SQLColumn{{Name: "n", Type: "UInt8"}}, Rows: [][]any{{1}}}, nil
	}
	e := newSecureEnvOpts(t, ingest.Config{}, func(c *app.Config) { c.Quota.AnalyticsPerHour = 4 }, nil, func(svc *ingest.Service) {
		svc.MountPages(studio.Handler(studio.Config{CacheDir: t.TempDir(), Business: business, SQL: sql}), studio.Routes)
	})
	admin := e.tokens["alice"]
	other := e.addUser(t, "ta", "olaf", "admin")
	query := []byte(`{"sql":"SELECT 1"}`)

	// 4 analytics requests per hour, whichever route: 2 reports, 2 SQL queries.
	for range 2 {
		require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/ops/api/business", admin, nil, "").status)
		r := e.call(t, http.MethodPost, "/ops/api/sql", admin, query, "application/json")
		require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	}
	require.EqualValues(t, 1, bizQueries.Load(), "the report is cached")
	require.EqualValues(t, 1, sqlQueries.Load(), "the same statement within the TTL runs once")

	requireRateLimited(t, e.call(t, http.MethodGet, "/ops/api/business", admin, nil, ""), "the 5th report")
	// HEAD runs the GET handler, and so the query: it is charged as GET is.
	r := e.call(t, http.MethodHead, "/ops/api/business", admin, nil, "")
	require.Equal(t, http.StatusTooManyRequests, r.status, "a HEAD of the report over the budget")
	require.NotEmpty(t, r.header.Get("Retry-After"), "a HEAD of the report over the budget")
	requireRateLimited(t, e.call(t, http.MethodPost, "/ops/api/sql", admin, []byte(`{"sql":"SELECT 2"}`), "application/json"), "the 5th query")
	require.EqualValues(t, 1, sqlQueries.Load(), "a refused query did not run")
	// The cookbook is static and free.
	require.Equal(t, http.StatusOK, e.call(t, http.MethodGet, "/ops/api/sql/cookbook", admin, nil, "").status)

	// Another operator has a budget of their own, and the flood cost alice no job request.
	r = e.call(t, http.MethodPost, "/ops/api/sql", other, []byte(`{"sql":"SELECT 2"}`), "application/json")
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	require.EqualValues(t, 2, sqlQueries.Load())
	jobID(t, e.submitAs(t, admin))
}

// Presigning an upload is charged to the caller's request budget, the one job
// submissions use: carol (free tier, 2 requests per hour) presigns twice, the third
// presign and her next job are refused with 429, and bob's budget is untouched.
func TestPresigningAnUploadCountsAgainstTheCallersRateLimit(t *testing.T) {
	e := newSecureEnv(t)
	carol := e.tokens["carol"]
	for i := range 2 {
		r := e.call(t, http.MethodPost, "/v1/uploads", carol, nil, "")
		require.Equal(t, http.StatusCreated, r.status, "presign %d: %s", i+1, r.body)
	}
	requireRateLimited(t, e.call(t, http.MethodPost, "/v1/uploads", carol, nil, ""), "the 3rd presign")
	requireRateLimited(t, e.submitAs(t, carol), "a job after two presigns")
	r := e.call(t, http.MethodPost, "/v1/uploads", e.tokens["bob"], nil, "")
	require.Equal(t, http.StatusCreated, r.status, "another user's budget: %s", r.body)
}
