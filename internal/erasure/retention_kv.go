package erasure

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/streams"
)

// BucketLocks holds the leader locks of the periodic sweepers (one key per sweeper);
// its TTL, LockTTL, frees the lock of a holder that died.
const BucketLocks = "locks"

// Buckets returns the KV buckets of erasure and retention, stored and replicated as t
// says.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	return []jetstream.KeyValueConfig{{Bucket: BucketLocks, Description: "leader locks of the periodic sweepers (retention)",
		History: 1, TTL: LockTTL, Storage: t.Storage, Replicas: t.Replicas}}
}

// KVLock is a Locker on the locks bucket: the holder is whoever created the key. Safe
// for concurrent use.
type KVLock struct {
	kv jetstream.KeyValue
}

var _ Locker = (*KVLock)(nil)

// OpenLock binds the locks bucket (provisioned by internal/topology).
func OpenLock(ctx context.Context, js jetstream.JetStream) (*KVLock, error) {
	kv, err := streams.BindKV(ctx, js, BucketLocks)
	if err != nil {
		return nil, err
	}
	return &KVLock{kv: kv}, nil
}

// TryLock implements Locker.
func (l *KVLock) TryLock(ctx context.Context, name string) (func(), bool, error) {
	holder := ulid.Make().String()
	rev, err := l.kv.Create(ctx, name, []byte(holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		// Only our own revision is deleted: a lock that expired and was taken by
		// another replica stays theirs.
		_ = l.kv.Delete(context.WithoutCancel(ctx), name, jetstream.LastRevision(rev))
	}, true, nil
}
