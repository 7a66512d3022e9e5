package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// errNoWrite may be returned by an updateJSON callback to end without writing and
// without error.
var errNoWrite = errors.New("streams: nothing to write")

// getJSON decodes key into v and returns its revision; ok is false when the key does
// not exist.
func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (rev uint64, ok bool, err error) {
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

// updateJSON is a compare-and-swap loop over one JSON value: it reads key (the zero T
// when missing), applies fn, and writes the result only if nobody wrote in between,
// retrying otherwise. fn may run several times and must only change v. An error from fn
// ends the loop without writing; errNoWrite ends it without writing or error. It
// returns the value as last seen or written.
func updateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(v *T, exists bool) error) (T, error) {
	for attempt := 0; ; attempt++ {
		var v T
		rev, exists, err := getJSON(ctx, kv, key, &v)
		if err != nil {
			return v, err
		}
		if err := fn(&v, exists); err != nil {
			if errors.Is(err, errNoWrite) {
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

// scanJSON calls fn with the current value of every key matching filter (a KV key
// pattern with * and > wildcards), in no particular order. It reads a consistent
// snapshot through a watcher, so it costs one pass over the bucket's stream rather than
// a request per key.
func scanJSON[T any](ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, v T) error) error {
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
