package quota

import (
	"context"
	"fmt"
	"time"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/nats-io/nats.go/jetstream"
)

// RateLimiter enforces per-user request rates with a sliding window (Window) kept
// in the KV bucket "ratelimit" under "<tenant>.<user>" (job requests and presigned
// uploads) and "<tenant>.<user>.<purpose>" for a separate budget (PurposeAnalytics). Each admission is a
// compare-and-swap on the user's key, so the cap holds exactly however many ingest
// replicas count at once. A refused request costs one read and no write. Safe for
// concurrent use.
type RateLimiter struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenRateLimiter opens the ratelimit bucket, which Provision creates.
func OpenRateLimiter(ctx context.Context, js jetstream.JetStream) (*RateLimiter, error) {
	kv, err := streams.BindKV(ctx, js, BucketRateLimit)
	if err != nil {
		return nil, err
	}
	return &RateLimiter{kv: kv, now: time.Now}, nil
}

// Allow counts one request of a user against w. A refused request is not counted; its
// decision's Err() is a *Exceeded with RetryAfter set. A window without a limit
// admits everything without touching KV. w.Size must not exceed RateWindow, for
// which the bucket keeps idle state.
func (r *RateLimiter) Allow(ctx context.Context, tenant, user string, w Window) (Decision, error) {
	return r.AllowFor(ctx, tenant, user, "", w)
}

// PurposeAnalytics is the budget of operations analytics requests
// (Policy.AnalyticsWindow), counted apart from job requests.
const PurposeAnalytics = "analytics"

// AllowFor is Allow on the user's budget for purpose ("" is the job-request budget
// that Allow counts); a refused decision's Err names the purpose.
func (r *RateLimiter) AllowFor(ctx context.Context, tenant, user, purpose string, w Window) (Decision, error) {
	if w.Limit <= 0 {
		return Decision{Allowed: true}, nil
	}
	if w.Size > RateWindow {
		return Decision{}, fmt.Errorf("quota: rate window %s is longer than the %s the bucket keeps", w.Size, RateWindow)
	}
	key, err := schemas.UserKey(tenant, user)
	if err != nil {
		return Decision{}, err
	}
	if purpose != "" {
		if err := schemas.ValidToken(purpose); err != nil {
			return Decision{}, fmt.Errorf("quota: purpose: %w", err)
		}
		key += "." + purpose
	}
	var d Decision
	_, err = streams.UpdateJSON(ctx, r.kv, key, func(st *WindowState, _ bool) error {
		var next WindowState
		next, d = w.Admit(*st, r.now())
		if !d.Allowed {
			return streams.ErrNoChange
		}
		*st = next
		return nil
	})
	d.Purpose = purpose
	return d, err
}
