package quota_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestRateLimitHoldsExactlyAcrossReplicas(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	policy := quota.DefaultPolicy()
	policy.Tiers = map[schemas.Tier]quota.Limits{schemas.TierFree: {RequestsPerHour: 20}}
	tests := []struct {
		name      string
		tier      schemas.Tier
		requests  int
		wantAdmit int
	}{
		{name: "a normal user gets exactly 100 of 160 concurrent requests", tier: schemas.TierNormal, requests: 160, wantAdmit: 100},
		{name: "a free user gets exactly 20 of 64 concurrent requests", tier: schemas.TierFree, requests: 64, wantAdmit: 20},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := []string{"alice", "fred"}[i]
			var limiters []*quota.RateLimiter
			for _, js := range s.Replicas(t, 2) {
				rl, err := quota.OpenRateLimiter(ctx, js)
				if err != nil {
					t.Fatal(err)
				}
				limiters = append(limiters, rl)
			}
			w := policy.For(tc.tier).Window()
			var admitted, refused atomic.Int32
			var wg sync.WaitGroup
			const workers = 8
			for g := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rl := limiters[g%len(limiters)]
					for range tc.requests / workers {
						d, err := rl.Allow(ctx, "acme", user, w)
						if err != nil {
							t.Error(err)
							return
						}
						if d.Allowed {
							admitted.Add(1)
							continue
						}
						refused.Add(1)
						var ex *quota.Exceeded
						if err := d.Err(); !errors.As(err, &ex) || ex.RetryAfter <= 0 || ex.RetryAfter > 61*time.Minute || ex.Used != tc.wantAdmit {
							t.Errorf("refusal %v: want a rate_limited error with 0 < RetryAfter <= 61m and %d used", err, tc.wantAdmit)
						}
					}
				}()
			}
			wg.Wait()
			if int(admitted.Load()) != tc.wantAdmit || int(admitted.Load()+refused.Load()) != tc.requests {
				t.Fatalf("admitted %d and refused %d of %d, want exactly %d admitted", admitted.Load(), refused.Load(), tc.requests, tc.wantAdmit)
			}
			// Other users keep their own window.
			d, err := limiters[1].Allow(ctx, "acme", "bystander-"+user, w)
			if err != nil || !d.Allowed {
				t.Fatalf("another user was refused: %+v %v", d, err)
			}
		})
	}
}
