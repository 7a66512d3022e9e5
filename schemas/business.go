package schemas

import (
	"errors"
	"time"
)

// ErrAnalyticsOff means the analytics store is not configured: the endpoint answers 503
// and the dashboard shows "analytics not configured".
var ErrAnalyticsOff = errors.New("analytics not configured")

// BusinessWindows are the periods the dashboard offers, by their query value.
var BusinessWindows = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// BusinessReport is GET /ops/api/business?window=24h|7d|30d. Counts cover jobs submitted in
// [From, To). Lists may be empty, never null.
type BusinessReport struct {
	// Window is the query value ("24h").
	Window string         `json:"window"`
	From   time.Time      `json:"from"`
	To     time.Time      `json:"to"`
	Totals BusinessTotals `json:"totals"`
	// Series is jobs over time: hourly buckets for 24h, daily ones otherwise.
	Series []BusinessBucket `json:"series"`
	// Models compares model versions (canaries against their defaults).
	Models []ModelStats `json:"models"`
	// Tenants are the busiest tenants, at most 10, most jobs first.
	Tenants []TenantStats `json:"tenants"`
	// Errors are failed jobs by error code and stage, most frequent first.
	Errors []ErrorCount `json:"errors"`
	// Replays are the shadow replays of the window (replay_results), at most 20, the
	// latest first.
	Replays []ReplayStats `json:"replays"`
}

// ReplayStats is one replay's comparison of a shadow version with the original one,
// per task. A metric that no row of the replay has is absent.
type ReplayStats struct {
	ReplayID string   `json:"replay_id"`
	Task     string   `json:"task"`
	Model    string   `json:"model"`
	Original string   `json:"original_version"`
	Shadow   string   `json:"shadow_version"`
	Requests int64    `json:"requests"`
	Compared int64    `json:"compared"`
	Failed   int64    `json:"failed"`
	MeanIoU  *float64 `json:"mean_iou,omitempty"`
	MinIoU   *float64 `json:"min_iou,omitempty"`
	MeanPSNR *float64 `json:"mean_psnr,omitempty"`
	MeanSSIM *float64 `json:"mean_ssim,omitempty"`
	// TextEqualShare is the share of OCR replays whose text equals the original's.
	TextEqualShare *float64 `json:"text_equal_share,omitempty"`
	MeanCER        *float64 `json:"mean_cer,omitempty"`
	// OriginalP50MS and ShadowP50MS are the median processing times of the compared
	// requests' two runs.
	OriginalP50MS float64 `json:"original_p50_ms"`
	ShadowP50MS   float64 `json:"shadow_p50_ms"`
}

// BusinessTotals are the window's headline numbers.
type BusinessTotals struct {
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

// BusinessBucket is one period of Series.
type BusinessBucket struct {
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

// ErrBadQuery means an analyst query was refused or failed because of the query itself
// (not read-only, a syntax error, an unknown table): the endpoint answers 400.
var ErrBadQuery = errors.New("bad analyst query")

// SQLRequest is POST /ops/api/sql: one read-only statement (SELECT, WITH or EXPLAIN).
type SQLRequest struct {
	SQL string `json:"sql"`
}

// SQLColumn is one column of a SQLResult: its name and ClickHouse type.
type SQLColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// SQLResult is the answer to an SQLRequest. Values are JSON numbers, strings (times as
// "2006-01-02 15:04:05" in UTC), booleans, arrays or objects; Rows holds at most
// MaxRows rows, and Truncated says when the query had more.
type SQLResult struct {
	Columns   []SQLColumn `json:"columns"`
	Rows      [][]any     `json:"rows"`
	Truncated bool        `json:"truncated"`
	// Engine is the engine's version() (the embedded chDB or the server).
	Engine    string  `json:"engine"`
	ElapsedMS float64 `json:"elapsed_ms"`
}

// SQLQuery is one query of the analyst cookbook, as GET /ops/api/sql/cookbook lists it.
type SQLQuery struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	SQL   string `json:"sql"`
}
