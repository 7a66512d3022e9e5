package auth

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Users keeps users in the KV bucket "users" under "<tenant>.<user>". Safe for
// concurrent use; SetTier is a compare-and-swap, so replicas never lose each other's
// writes.
type Users struct {
	kv  jetstream.KeyValue
	js  jetstream.JetStream
	now func() time.Time
}

var _ UserStore = (*Users)(nil)

// OpenUsers opens the users bucket, which Provision creates.
func OpenUsers(ctx context.Context, js jetstream.JetStream) (*Users, error) {
	kv, err := streams.BindKV(ctx, js, BucketUsers)
	if err != nil {
		return nil, err
	}
	return &Users{kv: kv, js: js, now: time.Now}, nil
}

// Create stores a new user (default scopes: UserScopes); ErrUserExists if
// the id is taken in the tenant.
func (s *Users) Create(ctx context.Context, u *User) error {
	if u.Scopes == nil {
		u.Scopes = append([]Scope(nil), UserScopes...)
	}
	if err := u.Validate(); err != nil {
		return err
	}
	key, _ := schemas.UserKey(u.Tenant, u.ID)
	now := s.now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	_, err := streams.UpdateJSON(ctx, s.kv, key, func(v *User, exists bool) error {
		if exists {
			return fmt.Errorf("%w: %s in tenant %s", ErrUserExists, u.ID, u.Tenant)
		}
		*v = *u
		return nil
	})
	return err
}

// Get returns a user or ErrUserNotFound.
func (s *Users) Get(ctx context.Context, tenant, id string) (*User, error) {
	key, err := schemas.UserKey(tenant, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserNotFound, err)
	}
	var u User
	_, ok, err := streams.GetJSON(ctx, s.kv, key, &u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s in tenant %s", ErrUserNotFound, id, tenant)
	}
	return &u, nil
}

// List returns the users of a tenant, sorted by id.
func (s *Users) List(ctx context.Context, tenant string) ([]User, error) {
	if err := schemas.ValidToken(tenant); err != nil {
		return nil, fmt.Errorf("auth: tenant: %w", err)
	}
	var out []User
	err := streams.ScanJSON(ctx, s.kv, tenant+".*", func(_ string, u User) error {
		out = append(out, u)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// SetTier changes a user's tier. Tokens already issued keep the old tier until their
// next refresh (at most the access token lifetime).
func (s *Users) SetTier(ctx context.Context, tenant, id string, tier schemas.Tier) (*User, error) {
	if !tier.Valid() {
		return nil, fmt.Errorf("auth: tier %q is not one of premium, normal, free", tier)
	}
	return s.update(ctx, tenant, id, func(u *User) { u.Tier = tier })
}

// SetScopes replaces a user's scopes.
func (s *Users) SetScopes(ctx context.Context, tenant, id string, scopes []Scope) (*User, error) {
	for _, sc := range scopes {
		if _, err := ParseScope(string(sc)); err != nil {
			return nil, err
		}
	}
	return s.update(ctx, tenant, id, func(u *User) { u.Scopes = append([]Scope(nil), scopes...) })
}

// SetDisabled disables or enables a user. Disabling does not revoke anything by itself:
// the Authenticator, Issuer.Refresh, Issuer.RedeemTicket and the NATS entry refuse a
// disabled user's credentials while the flag is set, so enabling restores every API key
// that was not revoked otherwise. Sessions are revoked by the caller (Issuer.RevokeUser).
func (s *Users) SetDisabled(ctx context.Context, tenant, id string, disabled bool) (*User, error) {
	return s.update(ctx, tenant, id, func(u *User) {
		u.Disabled = disabled
		u.DisabledAt = nil
		if disabled {
			at := s.now().UTC()
			u.DisabledAt = &at
		}
	})
}

// UserChange is one change of the users bucket: the user as stored now, or nil when
// the record was deleted or purged.
type UserChange struct {
	Tenant, ID string
	User       *User
}

// Watch streams every change of the users bucket from now on (no initial values) until
// ctx ends; the channel closes when the watch ends. Each ingest replica follows it to
// close the live event streams of users that are disabled or deleted.
func (s *Users) Watch(ctx context.Context) (<-chan UserChange, error) {
	changes, err := streams.WatchJSON(ctx, s.kv, ">", func(key string, u *User) (UserChange, bool) {
		tenant, id, _ := strings.Cut(key, ".")
		return UserChange{Tenant: tenant, ID: id, User: u}, true
	}, jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("auth: watch the %s bucket: %w", BucketUsers, err)
	}
	return changes, nil
}

func (s *Users) update(ctx context.Context, tenant, id string, fn func(*User)) (*User, error) {
	key, err := schemas.UserKey(tenant, id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUserNotFound, err)
	}
	u, err := streams.UpdateJSON(ctx, s.kv, key, func(v *User, exists bool) error {
		if !exists {
			return fmt.Errorf("%w: %s in tenant %s", ErrUserNotFound, id, tenant)
		}
		fn(v)
		v.UpdatedAt = s.now().UTC()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// Delete removes a user record, leaving no trace of the key in the bucket. The user's
// jobs and data stay (Eraser.Erase removes everything); their sessions should be
// revoked with Issuer.RevokeUser. Deleting a missing user is not an error.
func (s *Users) Delete(ctx context.Context, tenant, id string) error {
	key, err := schemas.UserKey(tenant, id)
	if err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("auth: delete user %s/%s: %w", tenant, id, err)
	}
	return streams.PurgeSubject(ctx, s.js, streams.KVStream(BucketUsers), streams.KVSubject(BucketUsers, key))
}
