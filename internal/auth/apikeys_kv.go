package auth

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
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

var _ KeyAuthenticator = (*APIKeys)(nil)

// OpenAPIKeys opens the key buckets, which Provision creates.
func OpenAPIKeys(ctx context.Context, js jetstream.JetStream) (*APIKeys, error) {
	keys, err := streams.BindKV(ctx, js, BucketAPIKeys)
	if err != nil {
		return nil, err
	}
	usage, err := streams.BindKV(ctx, js, BucketKeyUsage)
	if err != nil {
		return nil, err
	}
	return &APIKeys{keys: keys, usage: usage, js: js, now: time.Now}, nil
}

// Create stores a key made by NewAPIKey.
func (s *APIKeys) Create(ctx context.Context, k *APIKey) error {
	if err := k.Validate(s.now()); err != nil {
		return err
	}
	if k.Hash == "" {
		return errors.New("auth: API key without a secret hash; make keys with NewAPIKey")
	}
	_, err := streams.UpdateJSON(ctx, s.keys, k.ID, func(v *APIKey, exists bool) error {
		if exists {
			return fmt.Errorf("auth: API key id %s is taken", k.ID)
		}
		*v = *k
		return nil
	})
	return err
}

// Get returns a key record, or ErrKeyNotFound.
func (s *APIKeys) Get(ctx context.Context, id string) (*APIKey, error) {
	if err := schemas.ValidToken(id); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyNotFound, err)
	}
	var k APIKey
	_, ok, err := streams.GetJSON(ctx, s.keys, id, &k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, id)
	}
	return &k, nil
}

// KeyInfo is an API key as listed: the record without its hash, and today's use.
type KeyInfo struct {
	APIKey
	UsedToday int `json:"used_today"`
}

// List returns a tenant's keys, newest first, revoked ones included.
func (s *APIKeys) List(ctx context.Context, tenant string) ([]KeyInfo, error) {
	if err := schemas.ValidToken(tenant); err != nil {
		return nil, fmt.Errorf("auth: tenant: %w", err)
	}
	var out []KeyInfo
	err := streams.ScanJSON(ctx, s.keys, ">", func(_ string, k APIKey) error {
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

// Revoke marks a key of tenant revoked, and every key it minted (and they minted) with
// it; they stop working at once on every replica. A key of another tenant is reported
// as ErrKeyNotFound. Revoking twice is not an error. Authenticate also checks each
// key's ancestors, so a child minted while its parent was being revoked is refused
// too.
func (s *APIKeys) Revoke(ctx context.Context, tenant, id string) error {
	if err := s.revokeOne(ctx, tenant, id); err != nil {
		return err
	}
	children := map[string][]string{}
	err := streams.ScanJSON(ctx, s.keys, ">", func(_ string, k APIKey) error {
		if k.Tenant == tenant && k.Parent != "" {
			children[k.Parent] = append(children[k.Parent], k.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: revoke the keys %s minted: %w", id, err)
	}
	queue := children[id]
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if err := s.revokeOne(ctx, tenant, c); err != nil && !errors.Is(err, ErrKeyNotFound) {
			return fmt.Errorf("auth: revoke key %s, minted by %s: %w", c, id, err)
		}
		queue = append(queue, children[c]...)
	}
	return nil
}

func (s *APIKeys) revokeOne(ctx context.Context, tenant, id string) error {
	if err := schemas.ValidToken(id); err != nil {
		return fmt.Errorf("%w: %v", ErrKeyNotFound, err)
	}
	_, err := streams.UpdateJSON(ctx, s.keys, id, func(k *APIKey, exists bool) error {
		switch {
		case !exists || k.Tenant != tenant:
			return fmt.Errorf("%w: %s", ErrKeyNotFound, id)
		case !k.RevokedAt.IsZero():
			return streams.ErrNoChange
		}
		k.RevokedAt = s.now().UTC()
		return nil
	})
	return err
}

// Delete removes a key and its usage counters without a trace (erasure).
func (s *APIKeys) Delete(ctx context.Context, id string) error {
	if err := schemas.ValidToken(id); err != nil {
		return fmt.Errorf("%w: %v", ErrKeyNotFound, err)
	}
	if err := streams.PurgeSubject(ctx, s.js, streams.KVStream(BucketAPIKeys), streams.KVSubject(BucketAPIKeys, id)); err != nil {
		return err
	}
	return streams.PurgeSubject(ctx, s.js, streams.KVStream(BucketKeyUsage), streams.KVSubject(BucketKeyUsage, id+".>"))
}

type dayCount struct {
	N int `json:"n"`
}

func usageKey(id string, day time.Time) string { return id + "." + day.UTC().Format("20060102") }

// Usage returns how many requests a key made on the UTC day of t.
func (s *APIKeys) Usage(ctx context.Context, id string, t time.Time) (int, error) {
	var c dayCount
	if _, _, err := streams.GetJSON(ctx, s.usage, usageKey(id, t), &c); err != nil {
		return 0, err
	}
	return c.N, nil
}

// Authenticate checks a presented key (constant-time hash comparison, revocation,
// expiry), then counts the request against the key's day. It returns the key's
// principal; over the daily quota it returns that principal with a *quota.Exceeded
// (ErrDailyQuota, RetryAfter until the next UTC midnight), so the refusal can be
// audited against the key. Refused requests are not counted.
func (s *APIKeys) Authenticate(ctx context.Context, token string) (Principal, error) {
	id, secret, err := ParseAPIKey(token)
	if err != nil {
		return Principal{}, err
	}
	k, err := s.Get(ctx, id)
	if errors.Is(err, ErrKeyNotFound) {
		return Principal{}, fmt.Errorf("%w: unknown key", ErrInvalidKey)
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.now()
	if err := k.Check(secret, now); err != nil {
		return Principal{}, err
	}
	if _, err := s.checkAncestors(ctx, k, now); err != nil {
		return Principal{}, err
	}
	p := k.Principal()
	_, err = streams.UpdateJSON(ctx, s.usage, usageKey(k.ID, now), func(c *dayCount, _ bool) error {
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

// OwnedBy returns the ids of every key a user owns, revoked ones included. It reads the
// whole bucket (erasure is rare).
func (s *APIKeys) OwnedBy(ctx context.Context, tenant, user string) ([]string, error) {
	var ids []string
	err := streams.ScanJSON(ctx, s.keys, ">", func(_ string, k APIKey) error {
		if k.Tenant == tenant && k.Owner == user {
			ids = append(ids, k.ID)
		}
		return nil
	})
	return ids, err
}

// RevokeOwnedBy revokes every key the user owns, and what they minted, and returns how
// many it revoked. Deleting a user calls it: a user id can be created again, and the
// former user's keys must not then act for the new one.
func (s *APIKeys) RevokeOwnedBy(ctx context.Context, tenant, user string) (int, error) {
	ids, err := s.OwnedBy(ctx, tenant, user)
	if err != nil {
		return 0, fmt.Errorf("auth: list the keys of %s/%s: %w", tenant, user, err)
	}
	for _, id := range ids {
		if err := s.Revoke(ctx, tenant, id); err != nil && !errors.Is(err, ErrKeyNotFound) {
			return 0, fmt.Errorf("auth: revoke key %s of %s/%s: %w", id, tenant, user, err)
		}
	}
	return len(ids), nil
}

// KeyChange is one change of the apikeys bucket: the key as stored now, or nil when
// it was deleted or purged (erasure).
type KeyChange struct {
	ID  string
	Key *APIKey
}

// Watch streams every change of the apikeys bucket from now on (no initial values)
// until ctx ends; the channel closes when the watch ends. Each ingest replica follows
// it to close the live event streams opened with a key that is revoked.
func (s *APIKeys) Watch(ctx context.Context) (<-chan KeyChange, error) {
	changes, err := streams.WatchJSON(ctx, s.keys, ">", func(id string, k *APIKey) (KeyChange, bool) {
		return KeyChange{ID: id, Key: k}, true
	}, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("auth: watch the %s bucket: %w", BucketAPIKeys, err)
	}
	return changes, nil
}

// Lineage returns the id of key id and the ids of the keys above it (the key that
// minted it, the key that minted that one, ...), while each of them is usable; else an
// error wrapping ErrInvalidKey and ErrKeyRevoked (revoked or gone) or ErrKeyExpired. It
// checks no secret and counts no use: it re-checks a key that an earlier request
// authenticated (an event stream opened with it, a ticket minted with it), and the
// ids name what revoking any of those keys must end.
func (s *APIKeys) Lineage(ctx context.Context, id string) ([]string, error) {
	k, err := s.Get(ctx, id)
	if errors.Is(err, ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %w: key %s no longer exists", ErrInvalidKey, ErrKeyRevoked, id)
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if err := k.usable(now); err != nil {
		return nil, err
	}
	above, err := s.checkAncestors(ctx, k, now)
	if err != nil {
		return nil, err
	}
	return append([]string{k.ID}, above...), nil
}

// checkAncestors refuses a key whose parent, or any key above it, is revoked, expired
// or gone: a minted key lives no longer than the chain that made it. It returns the
// ids of the keys above k, nearest first.
func (s *APIKeys) checkAncestors(ctx context.Context, k *APIKey, now time.Time) ([]string, error) {
	var ids []string
	for depth, parent := 1, k.Parent; parent != ""; depth++ {
		if depth >= MaxKeyDepth {
			return nil, fmt.Errorf("%w: key %s is minted %d keys deep", ErrInvalidKey, k.ID, depth)
		}
		p, err := s.Get(ctx, parent)
		switch {
		case errors.Is(err, ErrKeyNotFound):
			return nil, fmt.Errorf("%w: %w: the key that minted it is gone", ErrInvalidKey, ErrKeyRevoked)
		case err != nil:
			return nil, err
		case !p.RevokedAt.IsZero():
			return nil, fmt.Errorf("%w: %w: the key that minted it (%s) is revoked", ErrInvalidKey, ErrKeyRevoked, p.ID)
		case !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt):
			return nil, fmt.Errorf("%w: %w: the key that minted it (%s) expired", ErrInvalidKey, ErrKeyExpired, p.ID)
		}
		ids = append(ids, p.ID)
		parent = p.Parent
	}
	return ids, nil
}

// Depth returns how many keys deep k is minted: 1 for a key a person made.
func (s *APIKeys) Depth(ctx context.Context, k *APIKey) (int, error) {
	d := 1
	for parent := k.Parent; parent != "" && d <= MaxKeyDepth; d++ {
		p, err := s.Get(ctx, parent)
		if err != nil {
			return 0, err
		}
		parent = p.Parent
	}
	return d, nil
}
