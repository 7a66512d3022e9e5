package chdb_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/chdb"
)

// Library returns the cached libchdb.so, or skips (fails under STUDIO_REQUIRE_ASSETS=1).
func library(t *testing.T) string {
	t.Helper()
	p := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ChDB.Path))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatalf("chDB is not in the asset cache (run `studio fetch analytics`): %v", err)
		}
		t.Skipf("chDB is not in the asset cache (run `studio fetch analytics`): %v", err)
	}
	return p
}

func TestSession(t *testing.T) {
	lib := library(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := chdb.Open(lib, dir)
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Exec(ctx, "CREATE TABLE t (a UInt32, b String) ENGINE = MergeTree ORDER BY a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, `INSERT INTO t FORMAT JSONEachRow {"a":2,"b":"y"} {"a":1,"b":"x"}`); err != nil {
		t.Fatal(err)
	}
	out, err := s.Query(ctx, "SELECT a, b FROM t ORDER BY a", "TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "1\tx\n2\ty\n"; got != want {
		t.Errorf("rows = %q, want %q", got, want)
	}
	out, err = s.Query(ctx, "SELECT version()", "TabSeparated")
	if err != nil || !strings.HasPrefix(string(out), "26.7") {
		t.Errorf("version = %q, %v; want 26.7", out, err)
	}

	var ce *chdb.Error
	if _, err := s.Query(ctx, "SELECT * FROM missing", "TabSeparated"); !errors.As(err, &ce) || !strings.Contains(ce.Message, "UNKNOWN_TABLE") {
		t.Errorf("query of a missing table: %v, want an UNKNOWN_TABLE chdb.Error", err)
	}

	// Same path: the same session; another path: refused while this one is open.
	s2, err := chdb.Open(lib, dir)
	if err != nil || s2 != s {
		t.Fatalf("second Open on the same path = %p, %v; want the same session", s2, err)
	}
	s2.Close()
	if _, err := chdb.Open(lib, t.TempDir()); !errors.Is(err, chdb.ErrOtherPath) {
		t.Errorf("Open on another path = %v, want ErrOtherPath", err)
	}

	// Once the last user closes it, another path opens, and the first one's data is
	// there again when it is reopened.
	s.Close()
	if _, err := s.Query(ctx, "SELECT 1", "TabSeparated"); err == nil {
		t.Error("query on a closed session succeeded")
	}
	other, err := chdb.Open(lib, t.TempDir())
	if err != nil {
		t.Fatalf("Open on another path after Close: %v", err)
	}
	if out, err := other.Query(ctx, "SELECT count() FROM system.tables WHERE database = 'default' AND name = 't'", "TabSeparated"); err != nil || string(out) != "0\n" {
		t.Errorf("fresh path sees table t: %q, %v", out, err)
	}
	other.Close()
	again, err := chdb.Open(lib, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if out, err := again.Query(ctx, "SELECT count() FROM t", "TabSeparated"); err != nil || string(out) != "2\n" {
		t.Errorf("reopened path: count = %q, %v; want 2", out, err)
	}
}
