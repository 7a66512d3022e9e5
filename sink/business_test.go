package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
)

func TestBusinessOff(t *testing.T) {
	_, err := sink.Business(context.Background(), sink.Config{}, "24h")
	require.ErrorIs(t, err, schemas.ErrAnalyticsOff)
	_, err = sink.BusinessSource(sink.Config{})(context.Background(), 24*time.Hour)
	require.ErrorIs(t, err, schemas.ErrAnalyticsOff)
	_, err = sink.Business(context.Background(), sink.Config{Addr: "127.0.0.1:9000"}, "1h")
	require.Error(t, err)
	require.False(t, errors.Is(err, schemas.ErrAnalyticsOff))
}

type bizJob struct {
	id, tenant, user, model, version, status, code, stage string
	cache                                                 bool
	in                                                    uint64
	ago                                                   time.Duration
	total                                                 float64
}

type bizRating struct {
	id, job, tenant, user, model, version string
	rating                                int8
	ago                                   time.Duration
}

func TestBusiness(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) { testBusiness(t, e) })
	}
}

func testBusiness(t *testing.T, e engine) {
	cfg := e.config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := sink.Migrate(ctx, cfg)
	require.NoError(t, err)

	now := time.Now().UTC().Truncate(time.Second)
	jobs := []bizJob{
		{id: "j1", tenant: "a", user: "u1", model: "m1", version: "v1", status: "succeeded", in: 1000, ago: 30 * time.Minute, total: 100},
		{id: "j2", tenant: "a", user: "u1", model: "m1", version: "v1", status: "succeeded", in: 2000, ago: 90 * time.Minute, total: 200},
		{id: "j3", tenant: "a", user: "u2", model: "m1", version: "v1", status: "failed", code: "oom", stage: "inference", in: 3000, ago: 3 * time.Hour, total: 50},
		{id: "j4", tenant: "b", user: "u1", model: "m1", version: "v2", status: "succeeded", cache: true, in: 400, ago: 5 * time.Hour, total: 10},
		{id: "j5", tenant: "b", user: "u3", model: "m1", version: "v2", status: "cancelled", in: 500, ago: 10 * time.Hour, total: 5},
		{id: "j6", tenant: "c", user: "u1", model: "m2", version: "v1", status: "failed", code: "oom", stage: "inference", in: 60, ago: 20 * time.Hour, total: 70},
		{id: "j7", tenant: "c", user: "u1", model: "m2", version: "v1", status: "failed", code: "bad_input", stage: "preprocess", in: 70, ago: 20 * time.Hour, total: 1},
		// Outside 24h, inside 7d and 30d.
		{id: "j8", tenant: "a", user: "u9", model: "m1", version: "v1", status: "succeeded", in: 8000, ago: 30 * time.Hour, total: 300},
		// Outside 7d, inside 30d.
		{id: "j9", tenant: "d", user: "u1", model: "m1", version: "v1", status: "failed", code: "timeout", stage: "store", in: 9000, ago: 10 * 24 * time.Hour, total: 900},
		// Outside every window.
		{id: "j10", tenant: "a", user: "u1", model: "m1", version: "v1", status: "succeeded", in: 1, ago: 40 * 24 * time.Hour, total: 1},
	}
	// Ten small tenants with one cancelled job each: the tenant list stops at 10.
	for i := range 10 {
		jobs = append(jobs, bizJob{
			id: fmt.Sprintf("k%02d", i), tenant: fmt.Sprintf("t%02d", i), user: "u1", model: "m3", version: "v1",
			status: "cancelled", in: 1, ago: time.Duration(i+1) * 7 * time.Minute, total: 1,
		})
	}
	ratings := []bizRating{
		{id: "f1", job: "j1", tenant: "a", user: "u1", model: "m1", version: "v1", rating: 1, ago: 20 * time.Minute},
		{id: "f2", job: "j2", tenant: "a", user: "u1", model: "m1", version: "v1", rating: 1, ago: 80 * time.Minute},
		{id: "f3", job: "j2", tenant: "a", user: "u1", model: "m1", version: "v1", rating: -1, ago: 10 * time.Minute}, // changed their mind
		{id: "f4", job: "j2", tenant: "a", user: "u2", model: "m1", version: "v1", rating: 1, ago: 70 * time.Minute},
		{id: "f5", job: "j4", tenant: "b", user: "u1", model: "m1", version: "v2", rating: -1, ago: 4 * time.Hour},
		{id: "f6", job: "j8", tenant: "a", user: "u9", model: "m1", version: "v1", rating: 1, ago: 29 * time.Hour},
		{id: "f7", job: "j10", tenant: "a", user: "u1", model: "m1", version: "v1", rating: -1, ago: 39 * 24 * time.Hour},
	}
	// Everything twice, in separate inserts: FINAL must read each row once.
	for range 2 {
		insertJobs(t, cfg, now, jobs)
		insertRatings(t, cfg, now, ratings)
	}
	require.Equal(t, [][]any{{float64(2 * len(jobs))}}, e.rows(t, cfg, "SELECT count() FROM jobs"))

	before := time.Now().UTC().Truncate(time.Second)
	b, err := sink.Business(ctx, cfg, "24h")
	require.NoError(t, err)
	after := time.Now().UTC()
	require.Equal(t, "24h", b.Window)
	require.False(t, b.To.Before(before) || b.To.After(after), "to %s", b.To)
	require.Equal(t, b.To.Add(-24*time.Hour), b.From)

	require.Equal(t, schemas.BusinessTotals{
		Jobs: 17, Succeeded: 3, Failed: 3, Cancelled: 11, CacheHits: 1,
		Users:    15, // (a,u1) (a,u2) (b,u1) (b,u3) (c,u1) and t00..t09
		ThumbsUp: 2, ThumbsDown: 2, InputBytes: 1000 + 2000 + 3000 + 400 + 500 + 60 + 70 + 10,
	}, b.Totals)
	require.Equal(t, []schemas.ModelStats{
		{Task: "t2i", Model: "m1", Version: "v1", Jobs: 3, Failed: 1, P50MS: 150, P95MS: 195, ThumbsUp: 2, ThumbsDown: 1},
		{Task: "t2i", Model: "m1", Version: "v2", Jobs: 2, Failed: 0, P50MS: 10, P95MS: 10, ThumbsUp: 0, ThumbsDown: 1},
		{Task: "t2i", Model: "m2", Version: "v1", Jobs: 2, Failed: 2},
		{Task: "t2i", Model: "m3", Version: "v1", Jobs: 10},
	}, b.Models)
	require.Equal(t, []schemas.TenantStats{
		{Tenant: "a", Jobs: 3, Users: 2, InputBytes: 6000},
		{Tenant: "b", Jobs: 2, Users: 2, InputBytes: 900},
		{Tenant: "c", Jobs: 2, Users: 1, InputBytes: 130},
		{Tenant: "t00", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t01", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t02", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t03", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t04", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t05", Jobs: 1, Users: 1, InputBytes: 1},
		{Tenant: "t06", Jobs: 1, Users: 1, InputBytes: 1},
	}, b.Tenants)
	require.Equal(t, []schemas.ErrorCount{
		{Code: "oom", Stage: "inference", Count: 2},
		{Code: "bad_input", Stage: "preprocess", Count: 1},
	}, b.Errors)
	require.Equal(t, expectedSeries(b, time.Hour, now, jobs), b.Series)
	require.GreaterOrEqual(t, len(b.Series), 24)
	_, err = json.Marshal(b)
	require.NoError(t, err)

	// 7 days adds j8 and its rating; daily buckets.
	b, err = sink.BusinessSource(cfg)(ctx, 7*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, "7d", b.Window)
	require.Equal(t, schemas.BusinessTotals{
		Jobs: 18, Succeeded: 4, Failed: 3, Cancelled: 11, CacheHits: 1, Users: 16,
		ThumbsUp: 3, ThumbsDown: 2, InputBytes: 7040 + 8000,
	}, b.Totals)
	require.Equal(t, schemas.ModelStats{Task: "t2i", Model: "m1", Version: "v1", Jobs: 4, Failed: 1, P50MS: 200, P95MS: 290, ThumbsUp: 3, ThumbsDown: 1}, b.Models[0])
	require.Equal(t, schemas.TenantStats{Tenant: "a", Jobs: 4, Users: 3, InputBytes: 14000}, b.Tenants[0])
	require.Equal(t, expectedSeries(b, 24*time.Hour, now, jobs), b.Series)
	require.GreaterOrEqual(t, len(b.Series), 7)

	// 30 days adds j9 and its error; j10 and its rating stay out.
	b, err = sink.Business(ctx, cfg, "30d")
	require.NoError(t, err)
	require.Equal(t, schemas.BusinessTotals{
		Jobs: 19, Succeeded: 4, Failed: 4, Cancelled: 11, CacheHits: 1, Users: 17,
		ThumbsUp: 3, ThumbsDown: 2, InputBytes: 7040 + 8000 + 9000,
	}, b.Totals)
	require.Equal(t, []schemas.ErrorCount{
		{Code: "oom", Stage: "inference", Count: 2},
		{Code: "bad_input", Stage: "preprocess", Count: 1},
		{Code: "timeout", Stage: "store", Count: 1},
	}, b.Errors)
	require.Equal(t, expectedSeries(b, 24*time.Hour, now, jobs), b.Series)
	require.GreaterOrEqual(t, len(b.Series), 30)
}

// expectedSeries buckets the jobs, written relative to now, that fall in b's window by
// step, every bucket present.
func expectedSeries(b *schemas.BusinessReport, step time.Duration, now time.Time, jobs []bizJob) []schemas.BusinessBucket {
	var out []schemas.BusinessBucket
	for start := b.From.Truncate(step); start.Before(b.To); start = start.Add(step) {
		out = append(out, schemas.BusinessBucket{Start: start})
	}
	for _, j := range jobs {
		at := now.Add(-j.ago)
		if at.Before(b.From) || !at.Before(b.To) {
			continue
		}
		i := int(at.Truncate(step).Sub(out[0].Start) / step)
		out[i].Jobs++
		switch j.status {
		case "succeeded":
			out[i].Succeeded++
		case "failed":
			out[i].Failed++
		}
	}
	return out
}

func insertJobs(t *testing.T, cfg sink.Config, now time.Time, jobs []bizJob) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows [][]any
	for _, j := range jobs {
		var hit uint8
		if j.cache {
			hit = 1
		}
		at := now.Add(-j.ago)
		rows = append(rows, []any{j.id, j.tenant, j.user, "t2i", j.model, j.version,
			j.status, j.code, j.stage, hit, j.in, at, at.Add(time.Duration(j.total) * time.Millisecond), j.total})
	}
	require.NoError(t, sink.Insert(ctx, cfg, "jobs", []string{"job_id", "tenant", "user_id", "task", "model", "model_version",
		"status", "error_code", "error_stage", "cache_hit", "input_bytes", "submitted_at", "finished_at", "total_ms"}, rows))
}

func insertRatings(t *testing.T, cfg sink.Config, now time.Time, ratings []bizRating) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows [][]any
	for _, r := range ratings {
		rows = append(rows, []any{r.id, r.job, r.tenant, r.user, r.rating, r.model, r.version, now.Add(-r.ago)})
	}
	require.NoError(t, sink.Insert(ctx, cfg, "feedback", []string{"id", "job_id", "tenant", "user_id", "rating", "model", "model_version", "event_time"}, rows))
}
