package metrics

import (
	"context"
	"io"
	"time"

	"github.com/creativeai-studio/studio/internal/blob"
)

// InstrumentBlobs returns s with every operation timed in studio_blob_op_seconds under
// the backend label ("jetstream", "s3"). Get is timed until the object is open, not
// until the caller has read it.
func (m *Metrics) InstrumentBlobs(s blob.Store, backend string) blob.Store {
	if m == nil || s == nil {
		return s
	}
	return &instrumentedStore{next: s, m: m, backend: backend}
}

// instrumentedStore is safe for concurrent use when its store is.
type instrumentedStore struct {
	next    blob.Store
	m       *Metrics
	backend string
}

var _ blob.Store = (*instrumentedStore)(nil)

func (s *instrumentedStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (blob.Info, error) {
	defer s.m.blobOpDone(s.backend, "put", time.Now())
	return s.next.Put(ctx, key, r, size, contentType)
}

func (s *instrumentedStore) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	defer s.m.blobOpDone(s.backend, "get", time.Now())
	return s.next.Get(ctx, key)
}

func (s *instrumentedStore) Stat(ctx context.Context, key string) (blob.Info, error) {
	defer s.m.blobOpDone(s.backend, "stat", time.Now())
	return s.next.Stat(ctx, key)
}

func (s *instrumentedStore) Delete(ctx context.Context, key string) error {
	defer s.m.blobOpDone(s.backend, "delete", time.Now())
	return s.next.Delete(ctx, key)
}

func (s *instrumentedStore) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	defer s.m.blobOpDone(s.backend, "list", time.Now())
	return s.next.List(ctx, prefix)
}

func (s *instrumentedStore) Purge(ctx context.Context, key string) error {
	defer s.m.blobOpDone(s.backend, "purge", time.Now())
	return s.next.Purge(ctx, key)
}

func (s *instrumentedStore) Keys(ctx context.Context, prefixes ...string) ([]string, error) {
	defer s.m.blobOpDone(s.backend, "keys", time.Now())
	return s.next.Keys(ctx, prefixes...)
}
