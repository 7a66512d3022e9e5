package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// This file is the one typed KV helper of the project: a bucket wrapper for opaque
// values (KV), JSON reads, compare-and-swap updates, scans and watches over any
// bucket (GetJSON, UpdateJSON, ScanJSON, WatchJSON), and the purge helpers erasure
// uses. Domain packages build their stores on it; none of them writes its own CAS loop.

// ErrNoChange may be returned by an update callback (UpdateJSON, jobs.Store.Update) to
// end without writing and without error.
var ErrNoChange = errors.New("streams: no change")

// GetJSON decodes key into v and returns its revision; ok is false when the key does
// not exist.
func GetJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (rev uint64, ok bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if errors.Is(err, jetstream.ErrInvalidKey) {
		return 0, false, fmt.Errorf("streams: %s: invalid key %q", kv.Bucket(), key)
	}
	if err != nil {
		return 0, false, fmt.Errorf("streams: get %s/%s: %w", kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("streams: %s/%s holds a corrupt value: %w", kv.Bucket(), key, err)
	}
	return e.Revision(), true, nil
}

// UpdateJSON is a compare-and-swap loop over one JSON value: it reads key (the zero T
// when missing), applies fn, and writes the result only if nobody wrote in between,
// retrying otherwise. fn may run several times and must only change v. An error from fn
// ends the loop without writing; ErrNoChange ends it without writing or error. It
// returns the value as last seen or written.
func UpdateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(v *T, exists bool) error) (T, error) {
	for attempt := 0; ; attempt++ {
		var v T
		rev, exists, err := GetJSON(ctx, kv, key, &v)
		if err != nil {
			return v, err
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, ErrNoChange) {
				return v, nil
			}
			return v, err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return v, fmt.Errorf("streams: encode %s/%s: %w", kv.Bucket(), key, err)
		}
		if exists {
			_, err = kv.Update(ctx, key, data, rev)
		} else {
			_, err = kv.Create(ctx, key, data)
		}
		if err == nil {
			return v, nil
		}
		if !isConflict(err) {
			return v, fmt.Errorf("streams: write %s/%s: %w", kv.Bucket(), key, err)
		}
		if attempt >= casAttempts {
			return v, fmt.Errorf("%w: %s/%s", errCASContention, kv.Bucket(), key)
		}
		if err := casBackoff(ctx, attempt); err != nil {
			return v, err
		}
	}
}

// ScanJSON calls fn with the current value of every key matching filter (a KV key
// pattern with * and > wildcards), in no particular order. It reads a consistent
// snapshot through a watcher, so it costs one pass over the bucket's stream rather than
// a request per key.
func ScanJSON[T any](ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, v T) error) error {
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("streams: scan %s/%s: %w", kv.Bucket(), filter, err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("streams: scan %s/%s ended early", kv.Bucket(), filter)
			}
			if e == nil {
				return nil // the initial values are done
			}
			var v T
			if err := json.Unmarshal(e.Value(), &v); err != nil {
				continue // a corrupt entry is skipped, as a miss elsewhere
			}
			if err := fn(e.Key(), v); err != nil {
				return err
			}
		}
	}
}

// WatchJSON follows the keys matching filter (a KV key pattern with * and >
// wildcards) until ctx ends or the watch does, and sends on the returned channel what
// change makes of each write: the key and its decoded value, or nil when the key was
// deleted or purged. A change that returns false is not sent; a value that does not
// decode is skipped. opts are jetstream's (UpdatesOnly: no current values first). The
// channel closes when the watch ends; a reader that stops reading holds the watch up,
// so read until it closes or cancel ctx.
func WatchJSON[T, C any](ctx context.Context, kv jetstream.KeyValue, filter string, change func(key string, v *T) (C, bool), opts ...jetstream.WatchOpt) (<-chan C, error) {
	w, err := kv.Watch(ctx, filter, opts...)
	if err != nil {
		return nil, fmt.Errorf("streams: watch %s/%s: %w", kv.Bucket(), filter, err)
	}
	out := make(chan C, 64)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue // the end of the current values
				}
				var v *T
				if e.Operation() == jetstream.KeyValuePut {
					v = new(T)
					if json.Unmarshal(e.Value(), v) != nil {
						continue
					}
				}
				c, ok := change(e.Key(), v)
				if !ok {
					continue
				}
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// BindKV opens a bucket that provisioning created (see Topology.Provision). A bucket
// that is not found is asked for again for up to bindWait: on a cluster started at
// the same moment as its processes, one process's provisioning can return (another
// process created the stream an instant earlier) while the new stream has no leader
// yet and answers "not found"; such a process exited at start where a second later it
// would have bound (found by cmd/studio TestChaos).
func BindKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	deadline, delay := time.Now().Add(bindWait), 250*time.Millisecond
	for {
		kv, err := js.KeyValue(ctx, bucket)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) || time.Now().Add(delay).After(deadline) {
			return nil, fmt.Errorf("streams: open KV bucket %s (run provisioning first): %w", bucket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("streams: open KV bucket %s (run provisioning first): %w", bucket, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// bindWait bounds BindKV's wait for a bucket that is not found (a variable for the
// tests).
var bindWait = 15 * time.Second

// casAttempts bounds a compare-and-swap loop. Conflicts only happen while other writers
// change the same key, so running out means sustained contention on one key.
const casAttempts = 1000

// errCASContention is returned when casAttempts conflicts happened in a row.
var errCASContention = errors.New("streams: too much contention on one KV key")

// isConflict reports a compare-and-swap loss: someone else wrote the key first.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// casBackoff pauses after the first few conflicts so that many writers of one key do
// not spin; the pause grows to a few milliseconds and is jittered by the attempt count
// of each writer.
func casBackoff(ctx context.Context, attempt int) error {
	if attempt < 3 {
		return ctx.Err()
	}
	d := time.Duration(attempt%8+1) * 250 * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PurgeSubject removes every message of a subject (a KV key with its history and
// delete markers, or a whole key prefix with a '>' filter) from a bucket's stream, so
// that not even the key name remains. Watchers are not told; call the KV's Purge first
// where watchers matter.
func PurgeSubject(ctx context.Context, js jetstream.JetStream, stream, subject string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("streams: stream %s: %w", stream, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("streams: purge %s from %s: %w", subject, stream, err)
	}
	return nil
}

// KVStream and KVSubject name a bucket's stream and one key's subject.
func KVStream(bucket string) string       { return "KV_" + bucket }
func KVSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// ErrKeyExists is returned by KV.Create when the key is taken.
var ErrKeyExists = errors.New("streams: key exists")

// ErrKeyNotFound is returned by KV.Get for a missing or expired key.
var ErrKeyNotFound = errors.New("streams: key not found")

// KVConfig sizes a KV bucket.
type KVConfig struct {
	Bucket, Description string
	// TTL expires every key this long after its last write (0 keeps keys forever).
	TTL      time.Duration
	Replicas int
	Storage  jetstream.StorageType
}

// KV is a key-value bucket with opaque values. Create is atomic across processes, which
// is what makes an idempotency key claim safe. Safe for concurrent use.
type KV struct {
	kv jetstream.KeyValue
}

// OpenKV creates the bucket if needed (or updates its settings) and opens it; its reads
// go to the stream leader, as ProvisionKV says.
func OpenKV(ctx context.Context, js jetstream.JetStream, cfg KVConfig) (*KV, error) {
	kv, err := ProvisionKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: cfg.Description,
		History:     1,
		TTL:         cfg.TTL,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	return &KV{kv: kv}, nil
}

// ProvisionKV creates or updates a bucket whose reads are answered by its stream leader
// and returns it bound.
//
// nats.go creates every bucket with direct get (AllowDirect), which lets any replica
// answer a read; on a cluster a replica that has not applied the latest write answers
// "not found" or an old value, so a key written through one node and read back through
// another may be missed. Every bucket of the product is read by someone who must see the
// write that came before (a stage reading the job record ingest just created, a
// compare-and-swap loop reading the revision it will update), so all of them turn direct
// get off: the client then asks the stream leader ($JS.API.STREAM.MSG.GET), which acked
// the write only after storing it. The cost is that reads are not spread over replicas.
// The client decides per bucket handle, from the stream config at bind time, so a
// process that bound a bucket before it was provisioned this way must re-bind (restart).
func ProvisionKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	scfg, err := KVStreamConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, scfg); err != nil {
		return nil, fmt.Errorf("streams: provision KV bucket %s: %w", cfg.Bucket, err)
	}
	return BindKV(ctx, js, cfg.Bucket)
}

// KVStreamConfig returns the stream config of a bucket: what nats.go's
// CreateKeyValue would create (a test keeps the two equal), but with direct get off
// (see ProvisionKV). It supports the fields the product sets: Bucket, Description,
// History, TTL, MaxBytes, MaxValueSize, Storage, Replicas, Compression, LimitMarkerTTL
// and Metadata; mirrors and sources are refused.
func KVStreamConfig(cfg jetstream.KeyValueConfig) (jetstream.StreamConfig, error) {
	if cfg.Mirror != nil || len(cfg.Sources) > 0 || cfg.RePublish != nil || cfg.Placement != nil {
		return jetstream.StreamConfig{}, fmt.Errorf("streams: KV bucket %s: mirrors, sources, republish and placement are not supported here", cfg.Bucket)
	}
	if cfg.History > jetstream.KeyValueMaxHistory {
		return jetstream.StreamConfig{}, fmt.Errorf("streams: KV bucket %s: history %d is over the maximum %d", cfg.Bucket, cfg.History, jetstream.KeyValueMaxHistory)
	}
	history := int64(max(cfg.History, 1))
	maxBytes, maxMsgSize := cfg.MaxBytes, cfg.MaxValueSize
	if maxBytes == 0 {
		maxBytes = -1
	}
	if maxMsgSize == 0 {
		maxMsgSize = -1
	}
	// As nats.go: the de-duplication window is 2 minutes, or the TTL when shorter.
	duplicates := 2 * time.Minute
	if cfg.TTL > 0 && cfg.TTL < duplicates {
		duplicates = cfg.TTL
	}
	compression := jetstream.NoCompression
	if cfg.Compression {
		compression = jetstream.S2Compression
	}
	return jetstream.StreamConfig{
		Name:                   KVStream(cfg.Bucket),
		Description:            cfg.Description,
		Subjects:               []string{"$KV." + cfg.Bucket + ".>"},
		MaxMsgsPerSubject:      history,
		MaxBytes:               maxBytes,
		MaxAge:                 cfg.TTL,
		MaxMsgSize:             maxMsgSize,
		Storage:                cfg.Storage,
		Replicas:               max(cfg.Replicas, 1),
		AllowRollup:            true,
		DenyDelete:             true,
		Duplicates:             duplicates,
		MaxMsgs:                -1,
		MaxConsumers:           -1,
		AllowDirect:            false,
		Compression:            compression,
		Discard:                jetstream.DiscardNew,
		AllowMsgTTL:            cfg.LimitMarkerTTL != 0,
		SubjectDeleteMarkerTTL: cfg.LimitMarkerTTL,
		Metadata:               cfg.Metadata,
	}, nil
}

// WrapKV wraps a bucket that provisioning created (see BindKV).
func WrapKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

// Create stores value under key unless the key exists (ErrKeyExists).
func (b *KV) Create(ctx context.Context, key string, value []byte) error {
	if _, err := b.kv.Create(ctx, key, value); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrKeyExists, key)
		}
		return fmt.Errorf("streams: create %s: %w", key, err)
	}
	return nil
}

// Put stores value under key, replacing any value.
func (b *KV) Put(ctx context.Context, key string, value []byte) error {
	if _, err := b.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("streams: put %s: %w", key, err)
	}
	return nil
}

// Get returns the value under key, or ErrKeyNotFound.
func (b *KV) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("streams: get %s: %w", key, err)
	}
	return e.Value(), nil
}

// Delete removes key; a missing key is not an error.
func (b *KV) Delete(ctx context.Context, key string) error {
	if err := b.kv.Purge(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("streams: delete %s: %w", key, err)
	}
	return nil
}

// Keys lists the keys matching filter, a subject-style pattern ("idx.acme.*"), in the
// order they were last written. It reads every matching key: keep filters narrow.
func (b *KV) Keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := b.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("streams: list keys %s: %w", filter, err)
	}
	defer func() { _ = lister.Stop() }()
	var out []string
	for {
		select {
		case k, ok := <-lister.Keys():
			if !ok {
				return out, nil
			}
			out = append(out, k)
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
