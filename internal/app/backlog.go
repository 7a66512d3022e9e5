package app

import (
	"context"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// backlogMaxAge is how long ingest reuses a tier's backlog reading for the queue
// position of new jobs before asking the server again.
const backlogMaxAge = 250 * time.Millisecond

// cachedDepth wraps read (a tier's backlog, two JetStream API requests) so that ingest
// asks at most once per maxAge per tier, instead of once per job: the position of a
// job is the last reading plus the jobs this process queued since, which is exact
// while nothing drains and at most maxAge of progress behind otherwise; a failed
// reading answers the same error for maxAge. One caller
// refreshes a stale reading; the others go on with it meanwhile.
func cachedDepth(read ingest.QueueDepth, maxAge time.Duration) ingest.QueueDepth {
	type reading struct {
		n, since   int // the backlog read, and the jobs counted since
		err        error
		at         time.Time
		refreshing bool
	}
	var mu sync.Mutex
	tiers := map[schemas.Tier]*reading{}
	return func(ctx context.Context, tier schemas.Tier) (int, error) {
		mu.Lock()
		r := tiers[tier]
		if r != nil && (r.refreshing || time.Since(r.at) < maxAge) {
			if r.err != nil {
				mu.Unlock()
				return 0, r.err
			}
			n := r.n + r.since
			r.since++
			mu.Unlock()
			return n, nil
		}
		if r != nil {
			r.refreshing = true
		}
		mu.Unlock()
		n, err := read(ctx, tier)
		mu.Lock()
		defer mu.Unlock()
		if r != nil {
			r.refreshing = false
		}
		// A failed reading (the stage's consumer not created yet) is kept as long: the
		// job then has no position, as before, without a request per job.
		tiers[tier] = &reading{n: n, since: 1, err: err, at: time.Now()}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}
