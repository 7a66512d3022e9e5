package streams

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/quota"
)

// RateLimiter enforces per-user request rates with a sliding window (quota.Window) kept
// in the KV bucket "ratelimit" under "<tenant>.<user>". Each admission is a
// compare-and-swap on the user's key, so the cap holds exactly however many ingest
// replicas count at once. A refused request costs one read and no write. Safe for
// concurrent use.
type RateLimiter struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenRateLimiter opens the ratelimit bucket, which Provision creates.
func OpenRateLimiter(ctx context.Context, js jetstream.JetStream) (*RateLimiter, error) {
	kv, err := openKV(ctx, js, BucketRateLimit)
	if err != nil {
		return nil, err
	}
	return &RateLimiter{kv: kv, now: time.Now}, nil
}

// Allow counts one request of a user against w. A refused request is not counted; its
// decision's Err() is a *quota.Exceeded with RetryAfter set. A window without a limit
// admits everything without touching KV. w.Size must not exceed quota.RateWindow, for
// which the bucket keeps idle state.
func (r *RateLimiter) Allow(ctx context.Context, tenant, user string, w quota.Window) (quota.Decision, error) {
	if w.Limit <= 0 {
		return quota.Decision{Allowed: true}, nil
	}
	if w.Size > quota.RateWindow {
		return quota.Decision{}, fmt.Errorf("streams: rate window %s is longer than the %s the bucket keeps", w.Size, quota.RateWindow)
	}
	key, err := userKey(tenant, user)
	if err != nil {
		return quota.Decision{}, err
	}
	var d quota.Decision
	_, err = updateJSON(ctx, r.kv, key, func(st *quota.WindowState, _ bool) error {
		var next quota.WindowState
		next, d = w.Admit(*st, r.now())
		if !d.Allowed {
			return errNoWrite
		}
		*st = next
		return nil
	})
	return d, err
}
