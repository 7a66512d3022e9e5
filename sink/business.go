package sink

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// Business answers the /ops dashboard's business panels for the window ("24h", "7d" or
// "30d", as in schemas.BusinessWindows) ending now, from the jobs and feedback tables. Counts
// cover jobs submitted in [From, To); Series has hourly buckets for 24h and daily (UTC)
// ones otherwise, every bucket present, the first and last ones partial. Thumbs are the
// ratings of the window's jobs: a user's latest rating of a job counts once, whenever it
// was given. Rows written twice are read once (FINAL). P50MS and P95MS use ClickHouse's
// quantile (exact and interpolated up to 8192 succeeded jobs per model version, sampled
// beyond); they are 0 for a model version without a succeeded job.
//
// It returns schemas.ErrAnalyticsOff when cfg has neither a ClickHouse address nor an
// embedded engine. Each call opens its own client, runs its queries one after another
// and closes it: the dashboard asks rarely, a loopback or LAN dial costs about a
// millisecond next to the queries' FINAL scans, and nothing is left open to go stale when
// ClickHouse restarts. On the embedded engine the call shares the process's chDB session
// with the sink (internal/chdb), so its queries wait for the sink's current statement.
func Business(ctx context.Context, cfg Config, window string) (*schemas.BusinessReport, error) {
	if !cfg.Enabled() {
		return nil, schemas.ErrAnalyticsOff
	}
	span, ok := schemas.BusinessWindows[window]
	if !ok {
		return nil, fmt.Errorf("sink: business window %q: use 24h, 7d or 30d", window)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := open(&cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	to := time.Now().UTC().Truncate(time.Second)
	return business(ctx, conn, window, to.Add(-span), to)
}

// BusinessSource adapts Business to the dashboard's business panel (ingest/studio.BusinessFunc).
func BusinessSource(cfg Config) func(ctx context.Context, window time.Duration) (*schemas.BusinessReport, error) {
	return func(ctx context.Context, window time.Duration) (*schemas.BusinessReport, error) {
		for name, d := range schemas.BusinessWindows {
			if d == window {
				return Business(ctx, cfg, name)
			}
		}
		return nil, fmt.Errorf("sink: business window %s: use 24h, 7d or 30d", window)
	}
}

// The queries below read whole seconds: the bounds are bound client-side as UInt32 Unix
// times (DateTime compares by its instant, whatever the column's time zone), which reads
// the same on 18.16 and on a modern server.
const jobsInWindow = `jobs FINAL WHERE submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?)`

const (
	queryTotals = `SELECT
    count(),
    countIf(status = 'succeeded'),
    countIf(status = 'failed'),
    countIf(status = 'cancelled'),
    countIf(cache_hit = 1),
    uniqExact(tenant, user_id),
    sum(input_bytes)
FROM ` + jobsInWindow

	// %s is toStartOfHour or toStartOfDay.
	querySeries = `SELECT
    %s(submitted_at) AS bucket,
    count(),
    countIf(status = 'succeeded'),
    countIf(status = 'failed')
FROM ` + jobsInWindow + `
GROUP BY bucket
ORDER BY bucket`

	queryModels = `SELECT
    task,
    model,
    model_version,
    count(),
    countIf(status = 'failed'),
    quantileIf(0.5)(total_ms, status = 'succeeded'),
    quantileIf(0.95)(total_ms, status = 'succeeded')
FROM ` + jobsInWindow + `
GROUP BY task, model, model_version
ORDER BY task, model, model_version`

	// A user's latest rating of each job of the window; the job's row names the model.
	// The join is ALL INNER: its right side has one row per job (FINAL), so every rating
	// finds its job once. ANY INNER JOIN would read the same on 18.16 but not on a
	// current server, where (any_join_distinct_right_table_keys = 0, the default since
	// 19.14) it keeps one row per key on both sides: one rating per job. Both sides are
	// aliased: current servers refuse an unnamed subquery in a JOIN (ALIAS_REQUIRED).
	queryThumbs = `SELECT
    task,
    model,
    model_version,
    countIf(latest > 0),
    countIf(latest < 0)
FROM
(
    SELECT job_id, argMax(rating, event_time) AS latest
    FROM feedback FINAL
    WHERE job_id IN (SELECT job_id FROM jobs WHERE submitted_at >= toDateTime(?) AND submitted_at < toDateTime(?))
    GROUP BY job_id, tenant, user_id
) AS ratings
ALL INNER JOIN
(
    SELECT job_id, task, model, model_version FROM ` + jobsInWindow + `
) AS window_jobs USING (job_id)
GROUP BY task, model, model_version`

	queryTenants = `SELECT
    tenant,
    count() AS n,
    uniqExact(user_id),
    sum(input_bytes)
FROM ` + jobsInWindow + `
GROUP BY tenant
ORDER BY n DESC, tenant
LIMIT 10`

	queryErrors = `SELECT
    error_code,
    error_stage,
    count() AS n
FROM ` + jobsInWindow + ` AND status = 'failed'
GROUP BY error_code, error_stage
ORDER BY n DESC, error_code, error_stage`
)

// queryReplays summarises the replays of the window; a metric that does not apply is
// nan in the table and left out here (the count beside each says whether any row had it).
const queryReplays = `SELECT
    replay_id,
    task,
    model,
    original_version,
    shadow_version,
    count(),
    countIf(outcome = 'compared'),
    countIf(outcome = 'failed'),
    countIf(NOT isNaN(iou)),
    avgIf(iou, NOT isNaN(iou)),
    minIf(iou, NOT isNaN(iou)),
    countIf(NOT isNaN(psnr)),
    avgIf(psnr, NOT isNaN(psnr)),
    avgIf(ssim, NOT isNaN(ssim)),
    countIf(text_equal != 255),
    avgIf(text_equal, text_equal != 255),
    avgIf(cer, NOT isNaN(cer)),
    quantileIf(0.5)(original_ms, outcome = 'compared'),
    quantileIf(0.5)(shadow_ms, outcome = 'compared'),
    max(replayed_at) AS last
FROM replay_results FINAL
WHERE replayed_at >= toDateTime(?) AND replayed_at < toDateTime(?)
GROUP BY replay_id, task, model, original_version, shadow_version
ORDER BY last DESC, replay_id, task
LIMIT 20`

// replays reads the Replays of the business report.
func replays(ctx context.Context, conn conn, lo, hi uint32) ([]schemas.ReplayStats, error) {
	out := []schemas.ReplayStats{}
	rows, err := conn.Query(ctx, queryReplays, lo, hi)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var r schemas.ReplayStats
		var n, ok, failed, nIoU, nImg, nText uint64
		var iou, minIoU, psnr, ssim, eq, cer float64
		var last time.Time
		if err := rows.Scan(&r.ReplayID, &r.Task, &r.Model, &r.Original, &r.Shadow, &n, &ok, &failed,
			&nIoU, &iou, &minIoU, &nImg, &psnr, &ssim, &nText, &eq, &cer, &r.OriginalP50MS, &r.ShadowP50MS, &last); err != nil {
			rows.Close()
			return nil, err
		}
		r.Requests, r.Compared, r.Failed = int64(n), int64(ok), int64(failed)
		some := func(count uint64, v float64) *float64 {
			if count == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil
			}
			return &v
		}
		r.MeanIoU, r.MinIoU = some(nIoU, iou), some(nIoU, minIoU)
		r.MeanPSNR, r.MeanSSIM = some(nImg, psnr), some(nImg, ssim)
		r.TextEqualShare, r.MeanCER = some(nText, eq), some(nText, cer)
		r.OriginalP50MS, r.ShadowP50MS = milliseconds(r.OriginalP50MS), milliseconds(r.ShadowP50MS)
		out = append(out, r)
	}
	return out, closeRows(rows)
}

func business(ctx context.Context, conn conn, window string, from, to time.Time) (*schemas.BusinessReport, error) {
	b := &schemas.BusinessReport{
		Window: window, From: from, To: to,
		Series: []schemas.BusinessBucket{}, Models: []schemas.ModelStats{},
		Tenants: []schemas.TenantStats{}, Errors: []schemas.ErrorCount{}, Replays: []schemas.ReplayStats{},
	}
	lo, hi := uint32(from.Unix()), uint32(to.Unix())
	fail := func(what string, err error) (*schemas.BusinessReport, error) {
		return nil, fmt.Errorf("sink: business %s: %w", what, err)
	}

	// Totals (thumbs are added from the models' below).
	var jobs, ok, failed, cancelled, hits, users, inBytes uint64
	if err := queryRow(ctx, conn, queryTotals, []any{lo, hi}, &jobs, &ok, &failed, &cancelled, &hits, &users, &inBytes); err != nil {
		return fail("totals", err)
	}
	b.Totals = schemas.BusinessTotals{
		Jobs: int64(jobs), Succeeded: int64(ok), Failed: int64(failed), Cancelled: int64(cancelled),
		CacheHits: int64(hits), Users: int64(users), InputBytes: int64(inBytes),
	}

	// Series, with empty buckets filled in.
	step, fn := time.Hour, "toStartOfHour"
	if window != "24h" {
		step, fn = 24*time.Hour, "toStartOfDay"
	}
	counts := map[int64]schemas.BusinessBucket{}
	rows, err := conn.Query(ctx, fmt.Sprintf(querySeries, fn), lo, hi)
	if err != nil {
		return fail("series", err)
	}
	for rows.Next() {
		var start time.Time
		var n, s, f uint64
		if err := rows.Scan(&start, &n, &s, &f); err != nil {
			rows.Close()
			return fail("series", err)
		}
		counts[start.Unix()] = schemas.BusinessBucket{Start: start.UTC(), Jobs: int64(n), Succeeded: int64(s), Failed: int64(f)}
	}
	if err := closeRows(rows); err != nil {
		return fail("series", err)
	}
	for start := from.Truncate(step); start.Before(to); start = start.Add(step) {
		bk, found := counts[start.Unix()]
		if !found {
			bk = schemas.BusinessBucket{Start: start}
		}
		b.Series = append(b.Series, bk)
	}

	// Models, then their thumbs.
	type modelKey struct{ task, model, version string }
	index := map[modelKey]int{}
	rows, err = conn.Query(ctx, queryModels, lo, hi)
	if err != nil {
		return fail("models", err)
	}
	for rows.Next() {
		var m schemas.ModelStats
		var n, f uint64
		if err := rows.Scan(&m.Task, &m.Model, &m.Version, &n, &f, &m.P50MS, &m.P95MS); err != nil {
			rows.Close()
			return fail("models", err)
		}
		m.Jobs, m.Failed = int64(n), int64(f)
		m.P50MS, m.P95MS = milliseconds(m.P50MS), milliseconds(m.P95MS)
		index[modelKey{m.Task, m.Model, m.Version}] = len(b.Models)
		b.Models = append(b.Models, m)
	}
	if err := closeRows(rows); err != nil {
		return fail("models", err)
	}
	rows, err = conn.Query(ctx, queryThumbs, lo, hi, lo, hi)
	if err != nil {
		return fail("thumbs", err)
	}
	for rows.Next() {
		var k modelKey
		var up, down uint64
		if err := rows.Scan(&k.task, &k.model, &k.version, &up, &down); err != nil {
			rows.Close()
			return fail("thumbs", err)
		}
		i, found := index[k]
		if !found { // a job that arrived between the two queries
			continue
		}
		b.Models[i].ThumbsUp, b.Models[i].ThumbsDown = int64(up), int64(down)
		b.Totals.ThumbsUp += int64(up)
		b.Totals.ThumbsDown += int64(down)
	}
	if err := closeRows(rows); err != nil {
		return fail("thumbs", err)
	}

	// Busiest tenants.
	rows, err = conn.Query(ctx, queryTenants, lo, hi)
	if err != nil {
		return fail("tenants", err)
	}
	for rows.Next() {
		var t schemas.TenantStats
		var n, u, in uint64
		if err := rows.Scan(&t.Tenant, &n, &u, &in); err != nil {
			rows.Close()
			return fail("tenants", err)
		}
		t.Jobs, t.Users, t.InputBytes = int64(n), int64(u), int64(in)
		b.Tenants = append(b.Tenants, t)
	}
	if err := closeRows(rows); err != nil {
		return fail("tenants", err)
	}

	// Errors.
	rows, err = conn.Query(ctx, queryErrors, lo, hi)
	if err != nil {
		return fail("errors", err)
	}
	for rows.Next() {
		var e schemas.ErrorCount
		var n uint64
		if err := rows.Scan(&e.Code, &e.Stage, &n); err != nil {
			rows.Close()
			return fail("errors", err)
		}
		e.Count = int64(n)
		b.Errors = append(b.Errors, e)
	}
	if err := closeRows(rows); err != nil {
		return fail("errors", err)
	}
	if b.Replays, err = replays(ctx, conn, lo, hi); err != nil {
		return fail("replays", err)
	}
	return b, nil
}

// milliseconds rounds a quantile to 0.1 ms; NaN (no succeeded job) becomes 0, which
// JSON can carry.
func milliseconds(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*10) / 10
}
