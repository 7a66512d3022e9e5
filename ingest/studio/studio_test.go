package studio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/schemas"
)

// fakeCache writes files of the pinned sizes where the cache keeps the given assets (the
// handler checks sizes; digests are Ensure's business).
func fakeCache(t *testing.T, as ...assets.Asset) string {
	t.Helper()
	dir := t.TempDir()
	for _, a := range as {
		p := filepath.Join(dir, filepath.FromSlash(a.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, a.Size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPagesAndScripts(t *testing.T) {
	h := Handler(Config{CacheDir: t.TempDir()})
	for _, tc := range []struct {
		name, path, ctype, contains string
	}{
		{"the studio is served at the root", "/", "text/html", `name="studio-ui" content="studio"`},
		{"the dashboard is served at /ops", "/ops", "text/html", `name="studio-ui" content="ops"`},
		{"the studio script is served", "/static/app/studio.js", "javascript", "function openJob"},
		{"the metrics parser is served", "/static/app/prom.js", "javascript", "export function parse"},
		{"the stylesheet is served", "/static/app/studio.css", "text/css", ".compare"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, h, tc.path)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status %d", r.StatusCode)
			}
			if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if b := body(t, r); !strings.Contains(b, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff header")
			}
		})
	}
}

func TestEveryLocalReferenceOfThePagesResolves(t *testing.T) {
	cache := fakeCache(t, append(assets.Web, assets.PhotoAstronaut)...)
	h := Handler(Config{CacheDir: cache})
	ref := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"|from '\./([a-z]+\.js)'`)
	for _, page := range []string{"index.html", "ops.html", "studio.js", "ops.js"} {
		b, err := webFS.ReadFile("web/" + page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			p := m[1]
			if p == "" {
				p = "/static/app/" + m[2]
			}
			if r := get(t, h, p); r.StatusCode != http.StatusOK {
				t.Errorf("%s refers to %s, which answers %d", page, p, r.StatusCode)
			}
		}
	}
}

func TestEmbeddedFilesRevalidateWithTheirETag(t *testing.T) {
	h := Handler(Config{CacheDir: t.TempDir()})
	r := get(t, h, "/static/app/studio.js")
	etag := r.Header.Get("ETag")
	if etag == "" || r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, r.Header.Get("Cache-Control"))
	}
	if r2 := get(t, h, "/static/app/studio.js", "If-None-Match", etag); r2.StatusCode != http.StatusNotModified {
		t.Errorf("a matching If-None-Match answered %d, want 304", r2.StatusCode)
	}
}

func TestUnknownFilesAnswerProblemDetails(t *testing.T) {
	h := Handler(Config{CacheDir: t.TempDir()})
	for _, p := range []string{"/static/app/nope.js", "/static/app/index.html", "/static/vendor/jquery.js", "/static/other"} {
		r := get(t, h, p)
		if r.StatusCode != http.StatusNotFound || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", p, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
}

func TestTheChartLibraryComesFromTheCache(t *testing.T) {
	t.Run("missing: 404 saying how to fetch it, and the page config says so", func(t *testing.T) {
		h := Handler(Config{CacheDir: t.TempDir()})
		r := get(t, h, "/static/vendor/uplot.min.js")
		var p problem
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != http.StatusNotFound || p.Code != "asset_missing" || !strings.Contains(p.Detail, "studio fetch web") {
			t.Errorf("%d %+v", r.StatusCode, p)
		}
		var pc PageConfig
		_ = json.NewDecoder(get(t, h, "/static/config.json").Body).Decode(&pc)
		if pc.Charts {
			t.Error("config says charts are available")
		}
	})
	t.Run("cached: served with the pinned digest as ETag", func(t *testing.T) {
		h := Handler(Config{CacheDir: fakeCache(t, assets.Web...)})
		for name, v := range vendorFiles {
			r := get(t, h, "/static/vendor/"+name)
			if r.StatusCode != http.StatusOK || r.Header.Get("ETag") != `"`+v.asset.SHA256+`"` || r.ContentLength != v.asset.Size {
				t.Errorf("%s: %d ETag %s length %d", name, r.StatusCode, r.Header.Get("ETag"), r.ContentLength)
			}
		}
	})
	t.Run("a file of the wrong size is not served", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, filepath.FromSlash(assets.UPlotJS.Path))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte("alert(1)"), 0o644)
		if r := get(t, Handler(Config{CacheDir: dir}), "/static/vendor/uplot.min.js"); r.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", r.StatusCode)
		}
	})
}

func TestTheWebAssetsArePinnedExactly(t *testing.T) {
	for _, a := range assets.Web {
		if err := a.Validate(); err != nil {
			t.Error(err)
		}
		if a.License != "MIT" {
			t.Errorf("%s: licence %s", a.Name, a.License)
		}
	}
}

func TestTheExamplePhoto(t *testing.T) {
	t.Run("served from the cached photos when present", func(t *testing.T) {
		h := Handler(Config{CacheDir: fakeCache(t, assets.PhotoCoffee)})
		r := get(t, h, "/static/example.png")
		if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "image/png" || r.ContentLength != assets.PhotoCoffee.Size {
			t.Errorf("%d %s %d", r.StatusCode, r.Header.Get("Content-Type"), r.ContentLength)
		}
		var pc PageConfig
		_ = json.NewDecoder(get(t, h, "/static/config.json").Body).Decode(&pc)
		if !pc.Example {
			t.Error("config does not offer the example")
		}
	})
	t.Run("404 when no photo is cached", func(t *testing.T) {
		r := get(t, Handler(Config{CacheDir: t.TempDir()}), "/static/example.png")
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("status %d", r.StatusCode)
		}
	})
}

func TestPageConfig(t *testing.T) {
	h := Handler(Config{CacheDir: t.TempDir(), MaxUploadBytes: 5 << 20, AuthRequired: true})
	r := get(t, h, "/static/config.json")
	var pc PageConfig
	if err := json.NewDecoder(r.Body).Decode(&pc); err != nil {
		t.Fatal(err)
	}
	if pc.MaxUploadBytes != 5<<20 || !pc.AuthRequired || len(pc.AcceptedTypes) != 3 || pc.Analytics {
		t.Errorf("%+v", pc)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.Header.Get("Cache-Control"))
	}
}

func TestBusinessEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fn     BusinessFunc
		query  string
		status int
		code   string
	}{
		{"without a query function it says analytics are not configured", nil, "", 503, "analytics_not_configured"},
		{"schemas.ErrAnalyticsOff says the same", func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
			return nil, schemas.ErrAnalyticsOff
		}, "", 503, "analytics_not_configured"},
		{"a failing query is a 503 that hides the cause", func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
			return nil, errors.New("dial tcp: secret")
		}, "", 503, "analytics_unavailable"},
		{"an unknown window is refused", nil, "?window=1y", 400, "invalid_window"},
		{"a working query answers 200", func(_ context.Context, w time.Duration) (*schemas.BusinessReport, error) {
			if w != 7*24*time.Hour {
				return nil, errors.New("wrong window")
			}
			return &schemas.BusinessReport{Totals: schemas.BusinessTotals{Jobs: 3}}, nil
		}, "?window=7d", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, Handler(Config{CacheDir: t.TempDir(), Business: tc.fn}), "/ops/api/business"+tc.query)
			b := body(t, r)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d: %s", r.StatusCode, b)
			}
			if strings.Contains(b, "secret") {
				t.Error("the cause leaked to the client")
			}
			if tc.code != "" {
				var p problem
				_ = json.Unmarshal([]byte(b), &p)
				if p.Code != tc.code {
					t.Errorf("code %q, want %q", p.Code, tc.code)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(b), &got); err != nil {
				t.Fatal(err)
			}
			for _, list := range []string{"series", "models", "tenants", "errors"} {
				if v, ok := got[list].([]any); !ok || v == nil {
					t.Errorf("%s is %v, want an empty list", list, got[list])
				}
			}
			if got["window"] != "7d" {
				t.Errorf("window %v", got["window"])
			}
		})
	}
}

func TestRoutesMountOnAnAPIMux(t *testing.T) {
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "api") })
	ui := Handler(Config{CacheDir: t.TempDir()})
	for _, p := range Routes {
		api.Handle(p, ui)
	}
	if b := body(t, get(t, api, "/v1/models")); b != "api" {
		t.Errorf("the API route answered %q", b)
	}
	for _, p := range []string{"/", "/ops", "/static/app/ops.js"} {
		if r := get(t, api, p); r.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", p, r.StatusCode)
		}
	}
}

func TestBusinessReportsAreCachedPerWindowForAMinute(t *testing.T) {
	var mu sync.Mutex
	calls := map[time.Duration]int{}
	fn := func(ctx context.Context, w time.Duration) (*schemas.BusinessReport, error) {
		mu.Lock()
		calls[w]++
		n := calls[w]
		mu.Unlock()
		time.Sleep(10 * time.Millisecond) // concurrent callers arrive while this runs
		return &schemas.BusinessReport{Totals: schemas.BusinessTotals{Jobs: int64(n)}}, nil
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cache := newBusinessCache(fn, BusinessTTL, nil)
	cache.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := http.HandlerFunc((&handler{cfg: Config{Business: fn}, biz: cache}).business)
	count := func(w time.Duration) int { mu.Lock(); defer mu.Unlock(); return calls[w] }

	hammer := func(window string) {
		var wg sync.WaitGroup
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := httptest.NewRequest(http.MethodGet, "/ops/api/business?window="+window, nil)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					t.Errorf("window %s: status %d: %s", window, rec.Code, rec.Body)
				}
			}()
		}
		wg.Wait()
	}

	hammer("24h")
	hammer("7d")
	if got := count(24 * time.Hour); got != 1 {
		t.Errorf("40 concurrent requests for 24h ran %d queries, want 1", got)
	}
	if got := count(7 * 24 * time.Hour); got != 1 {
		t.Errorf("40 concurrent requests for 7d ran %d queries, want 1 (each window has its own entry)", got)
	}

	mu.Lock()
	now = now.Add(BusinessTTL - time.Second)
	mu.Unlock()
	hammer("24h")
	if got := count(24 * time.Hour); got != 1 {
		t.Errorf("within the minute the 24h report was queried again: %d queries", got)
	}

	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	hammer("24h")
	if got := count(24 * time.Hour); got != 2 {
		t.Errorf("after the minute: %d queries for 24h, want 2", got)
	}
	var got schemas.BusinessReport
	if err := json.Unmarshal([]byte(body(t, get(t, h, "/ops/api/business?window=24h"))), &got); err != nil {
		t.Fatal(err)
	}
	if got.Totals.Jobs != 2 || got.Window != "24h" {
		t.Errorf("served %+v, want the refreshed report (jobs 2) for window 24h", got.Totals)
	}
}

func TestAFailedBusinessQueryIsRetriedNotCached(t *testing.T) {
	var calls atomic.Int32
	fn := func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
		if calls.Add(1) == 1 {
			return nil, errors.New("store down")
		}
		return &schemas.BusinessReport{}, nil
	}
	h := Handler(Config{CacheDir: t.TempDir(), Business: fn})
	if r := get(t, h, "/ops/api/business"); r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("first call: status %d, want 503", r.StatusCode)
	}
	if r := get(t, h, "/ops/api/business"); r.StatusCode != http.StatusOK {
		t.Fatalf("second call: status %d, want 200 from a fresh query", r.StatusCode)
	}
}

// Concurrent runs of one statement query the store once; another statement has its
// own entry; a result older than the TTL is queried again; a failure is not kept; a
// full cache of fresh results runs new statements uncached instead of growing.
func TestSQLResultsAreCachedPerStatement(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	fail := false
	fn := func(_ context.Context, q string) (*schemas.SQLResult, error) {
		mu.Lock()
		calls[q]++
		f := fail
		mu.Unlock()
		time.Sleep(10 * time.Millisecond) // concurrent callers arrive while this runs
		if f {
			return nil, errors.New("store down")
		}
		return &schemas.SQLResult{Rows: [][]any{{q}}}, nil
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cache := newSQLCache(fn, SQLTTL, nil)
	cache.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	count := func(q string) int { mu.Lock(); defer mu.Unlock(); return calls[q] }
	hammer := func(q string) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := cache.get(context.Background(), q)
				if err != nil || res.Rows[0][0] != q {
					t.Errorf("%s: %v %v", q, res, err)
				}
			}()
		}
		wg.Wait()
	}
	hammer("SELECT 1")
	hammer("SELECT 2")
	if count("SELECT 1") != 1 || count("SELECT 2") != 1 {
		t.Fatalf("calls %v, want one per statement", calls)
	}
	mu.Lock()
	now = now.Add(SQLTTL)
	mu.Unlock()
	hammer("SELECT 1")
	if got := count("SELECT 1"); got != 2 {
		t.Fatalf("after the TTL: %d runs, want 2", got)
	}
	mu.Lock()
	fail, now = true, now.Add(SQLTTL)
	mu.Unlock()
	if _, err := cache.get(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("a failure was answered from the cache")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if _, err := cache.get(context.Background(), "SELECT 1"); err != nil || count("SELECT 1") != 4 {
		t.Fatalf("after a failure: %v, %d runs, want a new run", err, count("SELECT 1"))
	}
	for i := range sqlCacheEntries + 10 {
		if _, err := cache.get(context.Background(), fmt.Sprintf("SELECT %d", 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(cache.entries); n > sqlCacheEntries {
		t.Fatalf("%d entries kept, want at most %d", n, sqlCacheEntries)
	}
}
