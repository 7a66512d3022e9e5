package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/metrics"
)

// recordingStore answers every call with fixed values and remembers the call, so the
// test sees exactly what the decorator passes through. A real backend runs under the
// decorator in internal/app's metrics tests.
type recordingStore struct{ calls []string }

var errBackend = fmt.Errorf("backend down: %w", blob.ErrNotFound)

func (s *recordingStore) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) (blob.Info, error) {
	b, _ := io.ReadAll(r)
	s.calls = append(s.calls, fmt.Sprintf("put %s %q %d %s", key, b, size, ct))
	return blob.Info{Key: key, Size: size, SHA256: "abc"}, nil
}

func (s *recordingStore) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	s.calls = append(s.calls, "get "+key)
	if key == "missing" {
		return nil, blob.Info{}, errBackend
	}
	return io.NopCloser(strings.NewReader("pixels")), blob.Info{Key: key, Size: 6}, nil
}

func (s *recordingStore) Stat(ctx context.Context, key string) (blob.Info, error) {
	s.calls = append(s.calls, "stat "+key)
	return blob.Info{Key: key, Size: 6}, nil
}

func (s *recordingStore) Delete(ctx context.Context, key string) error {
	s.calls = append(s.calls, "delete "+key)
	return nil
}

func (s *recordingStore) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	s.calls = append(s.calls, "list "+prefix)
	return []blob.Info{{Key: prefix + "a"}}, nil
}

func (s *recordingStore) Purge(ctx context.Context, key string) error {
	s.calls = append(s.calls, "purge "+key)
	return nil
}

func (s *recordingStore) Keys(ctx context.Context, prefixes ...string) ([]string, error) {
	s.calls = append(s.calls, fmt.Sprint("keys ", prefixes))
	return []string{prefixes[0] + "a"}, nil
}

func TestInstrumentedStorePassesCallsThroughAndTimesThem(t *testing.T) {
	ctx := context.Background()
	m := metrics.New()
	inner := &recordingStore{}
	s := m.InstrumentBlobs(inner, "jetstream")

	if info, err := s.Put(ctx, "k", bytes.NewReader([]byte("xy")), 2, "image/png"); err != nil || info.SHA256 != "abc" {
		t.Errorf("Put = %+v, %v", info, err)
	}
	rc, info, err := s.Get(ctx, "k")
	if err != nil || info.Size != 6 {
		t.Fatalf("Get = %+v, %v", info, err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "pixels" {
		t.Errorf("Get body %q", b)
	}
	rc.Close()
	if _, _, err := s.Get(ctx, "missing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get of a missing key = %v; the error must pass through unchanged", err)
	}
	if _, err := s.Stat(ctx, "k"); err != nil {
		t.Error(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Error(err)
	}
	if l, err := s.List(ctx, "work/"); err != nil || len(l) != 1 || l[0].Key != "work/a" {
		t.Errorf("List = %+v, %v", l, err)
	}
	// Erasure's capabilities pass through: a wrapped store still purges delete markers
	// and lists keys the backend's way.
	if err := s.Purge(ctx, "k"); err != nil {
		t.Error(err)
	}
	if k, err := s.Keys(ctx, "inputs/", "work/"); err != nil || len(k) != 1 || k[0] != "inputs/a" {
		t.Errorf("Keys = %q, %v", k, err)
	}
	want := []string{`put k "xy" 2 image/png`, "get k", "get missing", "stat k", "delete k", "list work/", "purge k", "keys [inputs/ work/]"}
	if fmt.Sprint(inner.calls) != fmt.Sprint(want) {
		t.Errorf("calls reaching the store %q, want %q", inner.calls, want)
	}
	for op, n := range map[string]float64{"put": 1, "get": 2, "stat": 1, "delete": 1, "list": 1, "purge": 1, "keys": 1} {
		if v := mustSample(t, m.Registry(), "studio_blob_op_seconds", map[string]string{"backend": "jetstream", "op": op}); v != n {
			t.Errorf("%s timed %v times, want %v", op, v, n)
		}
	}
}
