package auth_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func TestAPIKeyDailyQuotaHoldsExactlyAcrossReplicas(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	var stores []*auth.APIKeys
	for _, js := range s.Replicas(t, 2) {
		k, err := auth.OpenAPIKeys(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, k)
	}
	key, token, err := auth.NewAPIKey("acme", "alice", "batch", schemas.TierNormal, []auth.Scope{auth.ScopeJobsWrite}, time.Time{}, 25, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := stores[0].Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	var ok, over atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				p, err := stores[g%2].Authenticate(ctx, token)
				var ex *quota.Exceeded
				switch {
				case err == nil:
					ok.Add(1)
				case errors.As(err, &ex) && errors.Is(err, quota.ErrDailyQuota) && ex.Used == 25 && ex.RetryAfter > 0 && ex.RetryAfter <= 24*time.Hour && p.KeyID == key.ID:
					over.Add(1)
				default:
					t.Errorf("unexpected %v (principal %+v)", err, p)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 25 || over.Load() != 55 {
		t.Fatalf("%d requests passed and %d were over quota, want exactly 25 and 55", ok.Load(), over.Load())
	}
	if n, err := stores[1].Usage(ctx, key.ID, time.Now()); err != nil || n != 25 {
		t.Fatalf("usage %d, %v; want 25", n, err)
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	s := streamstest.Start(t)
	ctx := context.Background()
	js := s.Replicas(t, 2)
	keys, err := auth.OpenAPIKeys(ctx, js[0])
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.OpenAPIKeys(ctx, js[1])
	if err != nil {
		t.Fatal(err)
	}
	mk := func(tenant string, expires time.Time) (*auth.APIKey, string) {
		k, tok, err := auth.NewAPIKey(tenant, "alice", "ci", schemas.TierFree, []auth.Scope{auth.ScopeJobsRead, auth.ScopeJobsWrite}, expires, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := keys.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
		return k, tok
	}
	live, liveTok := mk("acme", time.Time{})
	short, shortTok := mk("acme", time.Now().Add(1500*time.Millisecond))
	_, _ = mk("globex", time.Time{})
	id, _, _ := auth.ParseAPIKey(liveTok)
	forged := auth.APIKeyPrefix + id + "_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{name: "a valid key authenticates as its owner with its scopes and tier", run: func(t *testing.T) {
			p, err := other.Authenticate(ctx, liveTok)
			if err != nil || p.Tenant != "acme" || p.User != "alice" || p.KeyID != live.ID || p.Tier != schemas.TierFree || !p.Has(auth.ScopeJobsWrite) {
				t.Fatalf("%+v %v", p, err)
			}
		}},
		{name: "a wrong secret for a real key id is refused", run: func(t *testing.T) {
			if _, err := keys.Authenticate(ctx, forged); !errors.Is(err, auth.ErrInvalidKey) {
				t.Fatalf("%v", err)
			}
		}},
		{name: "an unknown key is refused", run: func(t *testing.T) {
			_, tok, _ := auth.NewAPIKey("acme", "alice", "", schemas.TierFree, []auth.Scope{auth.ScopeJobsRead}, time.Time{}, 0, time.Now())
			if _, err := keys.Authenticate(ctx, tok); !errors.Is(err, auth.ErrInvalidKey) {
				t.Fatalf("%v", err)
			}
		}},
		{name: "listing shows the tenant's keys with today's use and no hash", run: func(t *testing.T) {
			list, err := keys.List(ctx, "acme")
			if err != nil || len(list) != 2 {
				t.Fatalf("%d keys, %v; want 2", len(list), err)
			}
			for _, k := range list {
				if k.Hash != "" {
					t.Fatal("listing leaked a hash")
				}
				if k.ID == live.ID && k.UsedToday != 1 {
					t.Fatalf("used today %d, want 1", k.UsedToday)
				}
			}
		}},
		{name: "an expired key is refused", run: func(t *testing.T) {
			streamstest.Eventually(t, 5*time.Second, func() bool {
				_, err := keys.Authenticate(ctx, shortTok)
				return errors.Is(err, auth.ErrKeyExpired)
			}, "key %s never expired", short.ID)
		}},
		{name: "another tenant cannot revoke the key", run: func(t *testing.T) {
			if err := keys.Revoke(ctx, "globex", live.ID); !errors.Is(err, auth.ErrKeyNotFound) {
				t.Fatalf("%v", err)
			}
		}},
		{name: "a revoked key stops working on every replica at once", run: func(t *testing.T) {
			if err := keys.Revoke(ctx, "acme", live.ID); err != nil {
				t.Fatal(err)
			}
			if err := keys.Revoke(ctx, "acme", live.ID); err != nil {
				t.Fatalf("revoking twice: %v", err)
			}
			if _, err := other.Authenticate(ctx, liveTok); !errors.Is(err, auth.ErrKeyRevoked) {
				t.Fatalf("%v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.run)
	}
}
