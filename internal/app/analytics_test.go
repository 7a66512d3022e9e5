package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
)

func TestUpAnalyticsSelectsTheEngine(t *testing.T) {
	cached := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ChDB.Path))
	haveChDB := true
	if _, err := os.Stat(cached); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatalf("chDB is not in the asset cache (run `studio fetch analytics`): %v", err)
		}
		haveChDB = false
	}
	// A cache "directory" that is a file: the fetch fails at once.
	empty := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	embedded := sink.Config{EmbeddedDir: filepath.Join(data, "analytics"), ChDBLibrary: cached, Migrate: true}
	server := sink.Config{Addr: "127.0.0.1:9000"}
	for _, tc := range []struct {
		name, mode, addr, cache string
		needChDB                bool
		want                    sink.Config
		err                     string
	}{
		{name: "the zero value with an address writes to the server", addr: server.Addr, want: server},
		{name: "the zero value without an address runs no sink"},
		{name: "auto with an address writes to the server", mode: AnalyticsAuto, addr: server.Addr, want: server},
		{name: "auto without an address runs the embedded engine", mode: AnalyticsAuto, needChDB: true, want: embedded},
		{name: "auto without the library runs no sink", mode: AnalyticsAuto, cache: empty},
		{name: "embedded runs the embedded engine", mode: AnalyticsEmbedded, needChDB: true, want: embedded},
		{name: "embedded without the library is an error", mode: AnalyticsEmbedded, cache: empty, err: "fetch the embedded analytics engine"},
		{name: "embedded with an address is an error", mode: AnalyticsEmbedded, addr: server.Addr, err: "leave --clickhouse-addr empty"},
		{name: "clickhouse without an address is an error", mode: AnalyticsClickHouse, err: "needs --clickhouse-addr"},
		{name: "off runs no sink even with an address", mode: AnalyticsOff, addr: server.Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needChDB && !haveChDB {
				t.Skip("chDB is not in the asset cache (run `studio fetch analytics`)")
			}
			cache := tc.cache
			if cache == "" {
				cache = assets.DefaultDir()
			}
			cfg := &Config{DataDir: data, CacheDir: cache, Analytics: tc.mode, Sink: sink.Config{Addr: tc.addr}}
			log := logrus.New()
			log.SetOutput(os.Stderr)
			got, err := upAnalytics(context.Background(), cfg, log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tc.want.Addr || got.EmbeddedDir != tc.want.EmbeddedDir || got.ChDBLibrary != tc.want.ChDBLibrary || got.Migrate != tc.want.Migrate {
				t.Errorf("sink config = addr %q, embedded %q, library %q, migrate %v; want %q, %q, %q, %v",
					got.Addr, got.EmbeddedDir, got.ChDBLibrary, got.Migrate, tc.want.Addr, tc.want.EmbeddedDir, tc.want.ChDBLibrary, tc.want.Migrate)
			}
			if (tc.want.Addr != "" || tc.want.EmbeddedDir != "") != got.Enabled() {
				t.Errorf("Enabled() = %v", got.Enabled())
			}
		})
	}
	if err := (&Config{Analytics: "maybe"}).Validate(); err == nil || !strings.Contains(err.Error(), `--analytics "maybe"`) {
		t.Errorf("Validate with --analytics maybe = %v", err)
	}
}

// TestEndToEndEmbeddedAnalytics runs `studio up` with the embedded engine: two jobs
// reach the dashboard's business panel through the sink and chDB, with nothing but the
// asset cache set up.
func TestEndToEndEmbeddedAnalytics(t *testing.T) {
	_, _, photo := realAssets(t)
	if _, err := os.Stat(filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ChDB.Path))); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatalf("chDB is not in the asset cache (run `studio fetch analytics`): %v", err)
		}
		t.Skipf("chDB is not in the asset cache (run `studio fetch analytics`): %v", err)
	}
	api, natsURL := startUp(t, func(c *Config) {
		c.Analytics = AnalyticsEmbedded
		c.Stages = "ingest,preprocess,postprocess,store"
		c.Sink.FlushInterval = 100 * time.Millisecond
		c.OpsCacheTTL = -1 // the test polls until the rows land
	})
	jpg, err := os.ReadFile(photo(assets.PhotoRocket))
	if err != nil {
		t.Fatal(err)
	}
	// Two truncated JPEGs: accepted, then failed in preprocess; no model needed.
	for range 2 {
		resp, body := submit(t, api, "broken.jpg", jpg[:len(jpg)/3], map[string]string{"task": "remove-background"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/jobs = %s: %s", resp.Status, body)
		}
		var job ingest.JobResponse
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
		if j := waitFinal(t, api, job.ID, time.Minute); j.Status != schemas.StatusFailed {
			t.Fatalf("job %s ended %s, want failed", job.ID, j.Status)
		}
	}
	var b schemas.BusinessReport
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(api + "/ops/api/business?window=24h")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// 503 until the sink has created the tables.
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("GET /ops/api/business = %s: %s", resp.Status, body)
		}
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &b); err != nil {
				t.Fatal(err)
			}
		}
		if b.Totals.Jobs >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if b.Totals.Jobs != 2 || b.Totals.Failed != 2 {
		t.Fatalf("business totals = %+v, want 2 jobs, 2 failed", b.Totals)
	}
	if len(b.Errors) != 1 || b.Errors[0] != (schemas.ErrorCount{Code: "corrupt_image", Stage: string(schemas.StagePreprocess), Count: 2}) {
		t.Errorf("business errors = %+v, want 2 corrupt_image in preprocess", b.Errors)
	}

	// The SQL box: an analyst query over the same rows, a cookbook query, and refusals.
	status, body := postSQL(t, api, "SELECT status, error_code, count() AS n FROM jobs FINAL GROUP BY status, error_code")
	if status != http.StatusOK {
		t.Fatalf("POST /ops/api/sql = %d: %s", status, body)
	}
	var res schemas.SQLResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != "failed" || res.Rows[0][1] != "corrupt_image" || res.Rows[0][2] != float64(2) {
		t.Errorf("SQL rows = %v, want [[failed corrupt_image 2]]", res.Rows)
	}
	resp, err := http.Get(api + "/ops/api/sql/cookbook")
	if err != nil {
		t.Fatal(err)
	}
	var book []schemas.SQLQuery
	err = json.NewDecoder(resp.Body).Decode(&book)
	resp.Body.Close()
	if err != nil || len(book) == 0 {
		t.Fatalf("GET /ops/api/sql/cookbook = %v, %d queries", err, len(book))
	}
	for _, q := range book {
		if status, body := postSQL(t, api, q.SQL); status != http.StatusOK {
			t.Errorf("cookbook query %s = %d: %s", q.Name, status, body)
		}
	}
	for _, q := range []string{"DROP TABLE jobs", "SELECT * FROM file('/etc/passwd', 'LineAsString')", "SELECT nonsense FROM"} {
		if status, body := postSQL(t, api, q); status != http.StatusBadRequest || !strings.Contains(string(body), "bad_query") {
			t.Errorf("POST /ops/api/sql %q = %d: %s, want 400 bad_query", q, status, body)
		}
	}
	if status, body := postSQL(t, api, "SELECT count() FROM jobs"); status != http.StatusOK || !strings.Contains(string(body), "[\n      2\n    ]") {
		t.Errorf("after the refused statements: %d %s, want the 2 jobs still there", status, body)
	}

	// Erasing the user who submitted the jobs: the same statement, whose result is kept
	// 30 s, answers without the user's rows as soon as the sink has applied the erasure.
	const users = "SELECT tenant, user_id, count() FROM jobs GROUP BY tenant, user_id"
	status, body = postSQL(t, api, users)
	res = schemas.SQLResult{}
	if err := json.Unmarshal(body, &res); status != http.StatusOK || err != nil || len(res.Rows) != 1 {
		t.Fatalf("POST /ops/api/sql %q = %d: %s", users, status, body)
	}
	kept := time.Now()
	tenant, user := res.Rows[0][0].(string), res.Rows[0][1].(string)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nc, err := streams.Dial(natsURL, "erasure-test", "")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := natsobj.Open(ctx, js, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	eraser, err := erasure.NewEraser(ctx, js, blobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, tenant, user); err != nil {
		t.Fatal(err)
	}
	for {
		status, body := postSQL(t, api, users)
		var now schemas.SQLResult
		if status == http.StatusOK && json.Unmarshal(body, &now) == nil && len(now.Rows) == 0 {
			break
		}
		if time.Since(kept) > 25*time.Second {
			t.Fatalf("25 s after the result was kept and the user erased, %q still answers %d: %s", users, status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// postSQL sends one analyst query to POST /ops/api/sql and returns the status and body.
func postSQL(t *testing.T, api, query string) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(schemas.SQLRequest{SQL: query})
	resp, err := http.Post(api+"/ops/api/sql", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
