package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// TestCachedDepthReadsOncePerWindowAndCountsJobsSince checks the queue position ingest
// gives new jobs: one backlog reading per tier per window, plus the jobs counted since;
// a failed reading is kept as long, and a new window reads again.
func TestCachedDepthReadsOncePerWindowAndCountsJobsSince(t *testing.T) {
	backlog, reads := map[schemas.Tier]int{schemas.TierNormal: 5, schemas.TierPremium: 0}, 0
	var fail error
	depth := cachedDepth(func(_ context.Context, tier schemas.Tier) (int, error) {
		reads++
		return backlog[tier], fail
	}, 50*time.Millisecond)
	ctx := context.Background()
	for i, want := range []int{5, 6, 7} {
		if n, err := depth(ctx, schemas.TierNormal); err != nil || n != want {
			t.Fatalf("job %d: position-1 %d, %v; want %d", i, n, err, want)
		}
	}
	if n, _ := depth(ctx, schemas.TierPremium); n != 0 || reads != 2 {
		t.Fatalf("another tier: %d after %d reads; want 0 after its own reading", n, reads)
	}
	time.Sleep(60 * time.Millisecond)
	backlog[schemas.TierNormal] = 1 // the queue drained meanwhile
	if n, _ := depth(ctx, schemas.TierNormal); n != 1 || reads != 3 {
		t.Fatalf("after the window: %d after %d reads; want a new reading of 1", n, reads)
	}
	time.Sleep(60 * time.Millisecond)
	fail = errors.New("no consumer yet")
	for range 3 {
		if _, err := depth(ctx, schemas.TierNormal); err == nil {
			t.Fatal("a failed reading answered a position")
		}
	}
	if reads != 4 {
		t.Errorf("%d reads; a failed reading must be kept for the window too", reads)
	}
}
