package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

// lockKey is the one lease in BucketLock.
const lockKey = "controller"

// Lease is the stored lock: who holds it and until when.
type Lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// Lock is a lease in NATS KV that at most one controller holds at a time: taken with a
// create, renewed and taken over (once expired) with revision-checked updates, so two
// contenders can never both succeed. A holder that stops renewing loses it after TTL.
// Expiry compares wall clocks, so hosts' clocks must agree to well under TTL. Safe for
// concurrent use.
type Lock struct {
	kv     jetstream.KeyValue
	holder string
	ttl    time.Duration
	now    func() time.Time
}

// NewLock returns holder's handle on the controller lease.
func NewLock(ctx context.Context, js jetstream.JetStream, holder string, ttl time.Duration) (*Lock, error) {
	if holder == "" || ttl <= 0 {
		return nil, fmt.Errorf("rollout: a lock needs a holder name and a positive TTL")
	}
	kv, err := streams.BindKV(ctx, js, BucketLock)
	if err != nil {
		return nil, err
	}
	return &Lock{kv: kv, holder: holder, ttl: ttl, now: time.Now}, nil
}

// Acquire takes the lease when it is free or expired and renews it when held; it
// reports whether this holder has it now.
func (l *Lock) Acquire(ctx context.Context) (bool, error) {
	now := l.now()
	data, _ := json.Marshal(Lease{Holder: l.holder, Expires: now.Add(l.ttl).UTC()})
	cur, rev, ok, err := l.read(ctx)
	if err != nil {
		return false, err
	}
	switch {
	case !ok:
		_, err = l.kv.Create(ctx, lockKey, data)
	case cur.Holder == l.holder || now.After(cur.Expires):
		_, err = l.kv.Update(ctx, lockKey, data, rev)
	default:
		return false, nil
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err) {
		return false, nil // another contender wrote first
	}
	if err != nil {
		return false, fmt.Errorf("rollout: take the controller lock: %w", err)
	}
	return true, nil
}

// Release gives the lease up if this holder has it, so a successor need not wait TTL.
func (l *Lock) Release(ctx context.Context) error {
	cur, rev, ok, err := l.read(ctx)
	if err != nil || !ok || cur.Holder != l.holder {
		return err
	}
	if err := l.kv.Delete(ctx, lockKey, jetstream.LastRevision(rev)); err != nil && !isWrongSequence(err) {
		return fmt.Errorf("rollout: release the controller lock: %w", err)
	}
	return nil
}

// Current returns the stored lease, if any (expired or not).
func (l *Lock) Current(ctx context.Context) (Lease, bool, error) {
	cur, _, ok, err := l.read(ctx)
	return cur, ok, err
}

func (l *Lock) read(ctx context.Context) (Lease, uint64, bool, error) {
	e, err := l.kv.Get(ctx, lockKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Lease{}, 0, false, nil
	}
	if err != nil {
		return Lease{}, 0, false, fmt.Errorf("rollout: read the controller lock: %w", err)
	}
	var cur Lease
	if err := json.Unmarshal(e.Value(), &cur); err != nil {
		return Lease{}, e.Revision(), true, nil // unreadable: treat as expired
	}
	return cur, e.Revision(), true, nil
}
