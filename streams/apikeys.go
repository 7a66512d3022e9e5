package streams

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
)

// APIKeys keeps API keys in the KV bucket "apikeys" (by key id, secrets hashed) and
// counts their use per UTC day in "apikey_usage". The daily quota is enforced with
// compare-and-swap on the day's counter, so it holds exactly across replicas. Safe for
// concurrent use.
type APIKeys struct {
	keys  jetstream.KeyValue
	usage jetstream.KeyValue
	js    jetstream.JetStream
	now   func() time.Time
}

var _ auth.KeyAuthenticator = (*APIKeys)(nil)

// OpenAPIKeys opens the key buckets, which Provision creates.
func OpenAPIKeys(ctx context.Context, js jetstream.JetStream) (*APIKeys, error) {
	keys, err := openKV(ctx, js, BucketAPIKeys)
	if err != nil {
		return nil, err
	}
	usage, err := openKV(ctx, js, BucketKeyUsage)
	if err != nil {
		return nil, err
	}
	return &APIKeys{keys: keys, usage: usage, js: js, now: time.Now}, nil
}

// Create stores a key made by auth.NewAPIKey.
func (s *APIKeys) Create(ctx context.Context, k *auth.APIKey) error {
	if err := k.Validate(s.now()); err != nil {
		return err
	}
	if k.Hash == "" {
		return errors.New("streams: API key without a secret hash; make keys with auth.NewAPIKey")
	}
	_, err := updateJSON(ctx, s.keys, k.ID, func(v *auth.APIKey, exists bool) error {
		if exists {
			return fmt.Errorf("streams: API key id %s is taken", k.ID)
		}
		*v = *k
		return nil
	})
	return err
}

// Get returns a key record, or auth.ErrKeyNotFound.
func (s *APIKeys) Get(ctx context.Context, id string) (*auth.APIKey, error) {
	if err := schemas.ValidToken(id); err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrKeyNotFound, err)
	}
	var k auth.APIKey
	_, ok, err := getJSON(ctx, s.keys, id, &k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", auth.ErrKeyNotFound, id)
	}
	return &k, nil
}

// KeyInfo is an API key as listed: the record without its hash, and today's use.
type KeyInfo struct {
	auth.APIKey
	UsedToday int `json:"used_today"`
}

// List returns a tenant's keys, newest first, revoked ones included.
func (s *APIKeys) List(ctx context.Context, tenant string) ([]KeyInfo, error) {
	if err := schemas.ValidToken(tenant); err != nil {
		return nil, fmt.Errorf("streams: tenant: %w", err)
	}
	var out []KeyInfo
	err := scanJSON(ctx, s.keys, ">", func(_ string, k auth.APIKey) error {
		if k.Tenant == tenant {
			k.Hash = ""
			out = append(out, KeyInfo{APIKey: k})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	today := s.now()
	for i := range out {
		if out[i].UsedToday, err = s.Usage(ctx, out[i].ID, today); err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// Revoke marks a key of tenant revoked; it stops working at once on every replica. A
// key of another tenant is reported as auth.ErrKeyNotFound. Revoking twice is not an
// error.
func (s *APIKeys) Revoke(ctx context.Context, tenant, id string) error {
	if err := schemas.ValidToken(id); err != nil {
		return fmt.Errorf("%w: %v", auth.ErrKeyNotFound, err)
	}
	_, err := updateJSON(ctx, s.keys, id, func(k *auth.APIKey, exists bool) error {
		switch {
		case !exists || k.Tenant != tenant:
			return fmt.Errorf("%w: %s", auth.ErrKeyNotFound, id)
		case !k.RevokedAt.IsZero():
			return errNoWrite
		}
		k.RevokedAt = s.now().UTC()
		return nil
	})
	return err
}

// Delete removes a key and its usage counters without a trace (erasure).
func (s *APIKeys) Delete(ctx context.Context, id string) error {
	if err := schemas.ValidToken(id); err != nil {
		return fmt.Errorf("%w: %v", auth.ErrKeyNotFound, err)
	}
	if err := eraseSubject(ctx, s.js, kvStream(BucketAPIKeys), kvSubject(BucketAPIKeys, id)); err != nil {
		return err
	}
	return eraseSubject(ctx, s.js, kvStream(BucketKeyUsage), kvSubject(BucketKeyUsage, id+".>"))
}

type dayCount struct {
	N int `json:"n"`
}

func usageKey(id string, day time.Time) string { return id + "." + day.UTC().Format("20060102") }

// Usage returns how many requests a key made on the UTC day of t.
func (s *APIKeys) Usage(ctx context.Context, id string, t time.Time) (int, error) {
	var c dayCount
	if _, _, err := getJSON(ctx, s.usage, usageKey(id, t), &c); err != nil {
		return 0, err
	}
	return c.N, nil
}

// Authenticate checks a presented key (constant-time hash comparison, revocation,
// expiry), then counts the request against the key's day. It returns the key's
// principal; over the daily quota it returns that principal with a *quota.Exceeded
// (ErrDailyQuota, RetryAfter until the next UTC midnight), so the refusal can be
// audited against the key. Refused requests are not counted.
func (s *APIKeys) Authenticate(ctx context.Context, token string) (auth.Principal, error) {
	id, secret, err := auth.ParseAPIKey(token)
	if err != nil {
		return auth.Principal{}, err
	}
	k, err := s.Get(ctx, id)
	if errors.Is(err, auth.ErrKeyNotFound) {
		return auth.Principal{}, fmt.Errorf("%w: unknown key", auth.ErrInvalidKey)
	}
	if err != nil {
		return auth.Principal{}, err
	}
	now := s.now()
	if err := k.Check(secret, now); err != nil {
		return auth.Principal{}, err
	}
	p := k.Principal()
	_, err = updateJSON(ctx, s.usage, usageKey(k.ID, now), func(c *dayCount, _ bool) error {
		if k.DailyQuota > 0 && c.N >= k.DailyQuota {
			y, m, d := now.UTC().Date()
			midnight := time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
			return &quota.Exceeded{Kind: quota.ErrDailyQuota, Limit: k.DailyQuota, Used: c.N, RetryAfter: midnight.Sub(now)}
		}
		c.N++
		return nil
	})
	if err != nil {
		return p, err
	}
	return p, nil
}
