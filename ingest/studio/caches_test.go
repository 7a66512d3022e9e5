package studio

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// TestCachesDropAndHoldAnalyticsResults plays an erasure against both caches: the
// request drops what is kept, nothing is kept while the sink has not applied it, and
// afterwards results are kept again.
func TestCachesDropAndHoldAnalyticsResults(t *testing.T) {
	var sqlRuns, bizRuns atomic.Int64
	var inFlight func() // runs inside the next SQL query, when set
	sqlFn := func(_ context.Context, q string) (*schemas.SQLResult, error) {
		n := sqlRuns.Add(1)
		if inFlight != nil {
			inFlight()
		}
		return &schemas.SQLResult{Rows: [][]any{{q, n}}}, nil
	}
	bizFn := func(context.Context, time.Duration) (*schemas.BusinessReport, error) {
		bizRuns.Add(1)
		return &schemas.BusinessReport{}, nil
	}
	caches := &Caches{}
	sqlc := newSQLCache(sqlFn, SQLTTL, caches)
	biz := newBusinessCache(bizFn, BusinessTTL, caches)
	ctx := context.Background()
	ask := func() {
		t.Helper()
		if _, err := sqlc.get(ctx, "SELECT user_id FROM jobs"); err != nil {
			t.Fatal(err)
		}
		if _, err := biz.get(ctx, "24h", 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	want := func(stage string, sql, business int64) {
		t.Helper()
		if sqlRuns.Load() != sql || bizRuns.Load() != business {
			t.Fatalf("%s: %d SQL and %d business queries, want %d and %d", stage, sqlRuns.Load(), bizRuns.Load(), sql, business)
		}
	}

	ask()
	ask()
	want("kept within the TTL", 1, 1)

	release := caches.Hold() // an erasure is requested
	ask()
	want("dropped by the request", 2, 2)
	ask()
	want("nothing kept until the sink applied it", 3, 3)
	release()
	release() // harmless
	ask()
	ask()
	want("kept again once applied", 4, 4)

	// A query that started before a flush returns its answer but keeps nothing.
	caches.Flush()
	inFlight = func() { inFlight = nil; caches.Flush() }
	ask()
	ask()
	want("a result that raced a flush is not kept; one computed after it is", 6, 5)

	var none *Caches
	none.Flush()
	none.Hold()()
}
