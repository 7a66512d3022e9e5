package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/sink"
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
	embedded := sink.Config{EmbeddedDir: filepath.Join(data, "analytics"), ChDBLibrary: cached}
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
			if got.Addr != tc.want.Addr || got.EmbeddedDir != tc.want.EmbeddedDir || got.ChDBLibrary != tc.want.ChDBLibrary {
				t.Errorf("sink config = addr %q, embedded %q, library %q; want %q, %q, %q",
					got.Addr, got.EmbeddedDir, got.ChDBLibrary, tc.want.Addr, tc.want.EmbeddedDir, tc.want.ChDBLibrary)
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
