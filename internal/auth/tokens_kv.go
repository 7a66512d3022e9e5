package auth

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Tokens implements TokenStore: refresh-token families in the KV bucket "refresh"
// ("<tenant>.<user>.<family>") and the deny list in "revoked", where every entry carries
// its own TTL so it disappears when the token it blocks would have expired anyway.
// Safe for concurrent use by any number of replicas.
type Tokens struct {
	families jetstream.KeyValue
	revoked  jetstream.KeyValue
	now      func() time.Time
}

var _ TokenStore = (*Tokens)(nil)

// OpenTokens opens the refresh and revoked buckets, which Provision creates.
func OpenTokens(ctx context.Context, js jetstream.JetStream) (*Tokens, error) {
	fam, err := streams.BindKV(ctx, js, BucketRefresh)
	if err != nil {
		return nil, err
	}
	rev, err := streams.BindKV(ctx, js, BucketRevoked)
	if err != nil {
		return nil, err
	}
	return &Tokens{families: fam, revoked: rev, now: time.Now}, nil
}

func familyKey(tenant, user, id string) (string, error) {
	k, err := schemas.UserKey(tenant, user)
	if err != nil {
		return "", err
	}
	if err := schemas.ValidToken(id); err != nil {
		return "", fmt.Errorf("auth: token family: %w", err)
	}
	return k + "." + id, nil
}

// CreateFamily stores a new family.
func (t *Tokens) CreateFamily(ctx context.Context, f *RefreshFamily) error {
	key, err := familyKey(f.Tenant, f.User, f.ID)
	if err != nil {
		return err
	}
	_, err = streams.UpdateJSON(ctx, t.families, key, func(v *RefreshFamily, exists bool) error {
		if exists {
			return fmt.Errorf("auth: token family %s exists", f.ID)
		}
		*v = *f
		return nil
	})
	return err
}

// UpdateFamily is a compare-and-swap loop over one family (see TokenStore).
func (t *Tokens) UpdateFamily(ctx context.Context, tenant, user, id string, fn func(*RefreshFamily) error) (*RefreshFamily, error) {
	key, err := familyKey(tenant, user, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidToken, ErrTokenRevoked, err)
	}
	f, err := streams.UpdateJSON(ctx, t.families, key, func(v *RefreshFamily, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: %w: the session expired or was erased", ErrInvalidToken, ErrTokenRevoked)
		}
		return fn(v)
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// Families lists a user's families, oldest first.
func (t *Tokens) Families(ctx context.Context, tenant, user string) ([]RefreshFamily, error) {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	var out []RefreshFamily
	err = streams.ScanJSON(ctx, t.families, prefix+".*", func(_ string, f RefreshFamily) error {
		out = append(out, f)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}

// Deny puts id on the deny list until the given time. The entry's TTL is rounded up to
// whole seconds (the server refuses TTLs under one second); an id whose time has passed
// needs no entry. Denying an id twice is not an error.
func (t *Tokens) Deny(ctx context.Context, id string, until time.Time) error {
	ttl := until.Sub(t.now())
	if ttl <= 0 {
		return nil
	}
	ttl = (ttl + time.Second - 1).Truncate(time.Second)
	// The value holds no personal data: only when the entry lapses.
	_, err := t.revoked.Create(ctx, id, []byte(until.UTC().Format(time.RFC3339)), jetstream.KeyTTL(ttl))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("auth: deny %s: %w", id, err)
	}
	return nil
}

// Denied reports whether any of ids is on the deny list.
func (t *Tokens) Denied(ctx context.Context, ids ...string) (bool, error) {
	for _, id := range ids {
		_, err := t.revoked.Get(ctx, id)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, fmt.Errorf("auth: deny list: %w", err)
		}
	}
	return false, nil
}

// Claim creates the deny-list entry id (with a TTL until the given time) and reports
// whether it was new: the KV create is atomic on the stream leader, so exactly one of
// any number of concurrent claims wins.
func (t *Tokens) Claim(ctx context.Context, id string, until time.Time) (bool, error) {
	ttl := max(until.Sub(t.now()), time.Second)
	ttl = (ttl + time.Second - 1).Truncate(time.Second)
	_, err := t.revoked.Create(ctx, id, []byte(until.UTC().Format(time.RFC3339)), jetstream.KeyTTL(ttl))
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("auth: claim %s: %w", id, err)
	}
	return true, nil
}
