// Package blobtest is the conformance suite that every blob.Store backend passes, so the
// pipeline can swap the JetStream object store for an S3 server (and back) without
// noticing.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/creativeai-studio/studio/internal/blob"
)

// Run runs the suite against the backend that newStore opens. newStore is called once
// per sub-test, possibly from parallel sub-tests; it must return an empty store that
// nothing else writes to, and register its own cleanup with t.Cleanup.
//
// The large-object cases are skipped under -short.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s blob.Store)
	}{
		{"a put object reads back with its size, sha256 and content type", testRoundTrip},
		{"stat reports what put reported", testStat},
		{"get of a missing key returns ErrNotFound", testGetMissing},
		{"stat of a missing key returns ErrNotFound", testStatMissing},
		{"delete removes the object and deleting a missing key is not an error", testDelete},
		{"a put to an existing key replaces content and metadata", testOverwrite},
		{"list returns exactly the keys under the prefix", testListPrefix},
		{"list of an unused prefix is empty", testListEmpty},
		{"keys returns each key under any of the prefixes once", testKeys},
		{"purge removes the object and purging a missing key is not an error", testPurge},
		{"a zero-byte object round-trips", testEmptyObject},
		{"a 20 MiB object streams through put and get", testLargeObject},
		{"32 objects put and got from 8 goroutines agree", testConcurrent},
		{"a reader shorter than the declared size fails the put", testShortReader},
		{"a cancelled context fails every operation", testCancelledContext},
		{"a put cancelled mid-stream leaves no object behind", testCancelMidStream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

func testRoundTrip(t *testing.T, s blob.Store) {
	tests := []struct {
		name        string
		key         string
		size        int
		contentType string
		unknownSize bool
	}{
		{"a flat key", "input.png", 1000, "image/png", false},
		{"a nested key", "tenant-1/jobs/01JABCDEF/input/image.webp", 64 << 10, "image/webp", false},
		{"a key with spaces, plus and parentheses", "jobs/x/in put+1 (copy).png", 10, "image/png", false},
		{"a key with unicode", "jobs/x/größe-画像.bin", 3, "application/octet-stream", false},
		{"a tensor put with an unknown size", "jobs/x/mask.npy", 300 << 10, "application/x-npy", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := randomBytes(uint64(i), tc.size)
			size := int64(len(data))
			if tc.unknownSize {
				size = -1
			}
			// Hide bytes.Reader's Seek and ReadAt: a Put must work on a plain stream.
			put, err := s.Put(t.Context(), tc.key, onlyReader{bytes.NewReader(data)}, size, tc.contentType)
			if err != nil {
				t.Fatalf("Put(%q): %v", tc.key, err)
			}
			checkInfo(t, "Put", put, tc.key, data, tc.contentType)

			got, info := get(t, s, tc.key)
			if !bytes.Equal(got, data) {
				t.Errorf("Get(%q) returned %d bytes that differ from the %d put", tc.key, len(got), len(data))
			}
			checkInfo(t, "Get", info, tc.key, data, tc.contentType)
		})
	}
}

func testStat(t *testing.T, s blob.Store) {
	data := randomBytes(1, 5000)
	put := mustPut(t, s, "stat/a.png", data, "image/png")
	info, err := s.Stat(t.Context(), "stat/a.png")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	checkInfo(t, "Stat", info, "stat/a.png", data, "image/png")
	if put.SHA256 != info.SHA256 || put.Size != info.Size {
		t.Errorf("Stat = %+v, Put reported %+v", info, put)
	}
}

func testGetMissing(t *testing.T, s blob.Store) {
	rc, _, err := s.Get(t.Context(), "missing/key")
	if err == nil {
		rc.Close()
		t.Fatal("Get of a missing key succeeded")
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Get of a missing key: err = %v, want errors.Is(err, blob.ErrNotFound)", err)
	}
}

func testStatMissing(t *testing.T, s blob.Store) {
	_, err := s.Stat(t.Context(), "missing/key")
	if !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat of a missing key: err = %v, want errors.Is(err, blob.ErrNotFound)", err)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	mustPut(t, s, "delete/a", []byte("a"), "text/plain")
	mustPut(t, s, "delete/b", []byte("b"), "text/plain")
	if err := s.Delete(t.Context(), "delete/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(t.Context(), "delete/a"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), "delete/b"); err != nil {
		t.Errorf("Delete removed a neighbouring key: Stat(delete/b): %v", err)
	}
	if err := s.Delete(t.Context(), "delete/a"); err != nil {
		t.Errorf("second Delete of the same key: %v, want nil", err)
	}
	if err := s.Delete(t.Context(), "delete/never-existed"); err != nil {
		t.Errorf("Delete of a key that never existed: %v, want nil", err)
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	mustPut(t, s, "over/key", randomBytes(1, 70_000), "image/png")
	second := randomBytes(2, 1234)
	mustPut(t, s, "over/key", second, "image/jpeg")
	got, info := get(t, s, "over/key")
	if !bytes.Equal(got, second) {
		t.Errorf("Get after overwrite returned %d bytes, want the second body (%d bytes)", len(got), len(second))
	}
	checkInfo(t, "Get after overwrite", info, "over/key", second, "image/jpeg")
	list, err := s.List(t.Context(), "over/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 {
		t.Errorf("List after overwrite has %d entries, want 1: %+v", len(list), list)
	}
}

func testListPrefix(t *testing.T, s blob.Store) {
	bodies := map[string][]byte{}
	for i, key := range []string{"list/a/1", "list/a/2", "list/a/sub/3", "list/b/1", "list/ab", "other/a/1"} {
		bodies[key] = randomBytes(uint64(i), 100+i)
		mustPut(t, s, key, bodies[key], "application/octet-stream")
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"list/a/", []string{"list/a/1", "list/a/2", "list/a/sub/3"}},
		{"list/a", []string{"list/a/1", "list/a/2", "list/a/sub/3", "list/ab"}},
		{"list/b/1", []string{"list/b/1"}},
		{"", []string{"list/a/1", "list/a/2", "list/a/sub/3", "list/ab", "list/b/1", "other/a/1"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("prefix %q", tc.prefix), func(t *testing.T) {
			list, err := s.List(t.Context(), tc.prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			var keys []string
			for _, info := range list {
				keys = append(keys, info.Key)
				if data, ok := bodies[info.Key]; ok {
					checkInfo(t, "List", info, info.Key, data, "")
				}
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, keys, tc.want)
			}
		})
	}
}

func testListEmpty(t *testing.T, s blob.Store) {
	mustPut(t, s, "present/a", []byte("x"), "text/plain")
	list, err := s.List(t.Context(), "absent/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("List(absent/) = %+v, want nothing", list)
	}
}

func testKeys(t *testing.T, s blob.Store) {
	for i, key := range []string{"keys/a/1", "keys/a/sub/2", "keys/ab", "keys/b/1", "other/1"} {
		mustPut(t, s, key, randomBytes(uint64(i), 10), "application/octet-stream")
	}
	tests := []struct {
		name     string
		prefixes []string
		want     []string
	}{
		{"one prefix", []string{"keys/a/"}, []string{"keys/a/1", "keys/a/sub/2"}},
		{"two disjoint prefixes", []string{"keys/a/", "keys/b/"}, []string{"keys/a/1", "keys/a/sub/2", "keys/b/1"}},
		{"overlapping prefixes list a key once", []string{"keys/a", "keys/a/"}, []string{"keys/a/1", "keys/a/sub/2", "keys/ab"}},
		{"an unused prefix", []string{"absent/"}, nil},
		{"no prefix at all", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := s.Keys(t.Context(), tc.prefixes...)
			if err != nil {
				t.Fatalf("Keys(%q): %v", tc.prefixes, err)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.want) {
				t.Errorf("Keys(%q) = %q, want %q", tc.prefixes, keys, tc.want)
			}
		})
	}
}

func testPurge(t *testing.T, s blob.Store) {
	mustPut(t, s, "purge/a", []byte("a"), "text/plain")
	mustPut(t, s, "purge/b", []byte("b"), "text/plain")
	if err := s.Purge(t.Context(), "purge/a"); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if _, err := s.Stat(t.Context(), "purge/a"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Purge: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context(), "purge/b"); err != nil {
		t.Errorf("Purge removed a neighbouring key: Stat(purge/b): %v", err)
	}
	for _, key := range []string{"purge/a", "purge/never-existed"} {
		if err := s.Purge(t.Context(), key); err != nil {
			t.Errorf("Purge(%s) of a missing key: %v, want nil", key, err)
		}
	}
	// A purged key can be used again.
	mustPut(t, s, "purge/a", []byte("again"), "text/plain")
	if got, _ := get(t, s, "purge/a"); string(got) != "again" {
		t.Errorf("Get after re-put = %q", got)
	}
}

func testEmptyObject(t *testing.T, s blob.Store) {
	for _, size := range []int64{0, -1} {
		t.Run(fmt.Sprintf("declared size %d", size), func(t *testing.T) {
			key := fmt.Sprintf("empty/%d", size)
			put, err := s.Put(t.Context(), key, onlyReader{bytes.NewReader(nil)}, size, "text/plain")
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			checkInfo(t, "Put", put, key, nil, "text/plain")
			got, info := get(t, s, key)
			if len(got) != 0 {
				t.Errorf("Get returned %d bytes, want 0", len(got))
			}
			checkInfo(t, "Get", info, key, nil, "text/plain")
		})
	}
}

func testLargeObject(t *testing.T, s blob.Store) {
	if testing.Short() {
		t.Skip("20 MiB objects are skipped under -short")
	}
	const size = 20 << 20
	for _, declared := range []int64{size, -1} {
		t.Run(fmt.Sprintf("declared size %d", declared), func(t *testing.T) {
			key := fmt.Sprintf("large/%d", declared)
			// Generate the body while it is read so neither side holds it whole.
			want := sha256.New()
			src := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed(7)), size), want)
			put, err := s.Put(t.Context(), key, onlyReader{src}, declared, "application/octet-stream")
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			wantSum := hex.EncodeToString(want.Sum(nil))
			if put.Size != size || put.SHA256 != wantSum {
				t.Errorf("Put = size %d sha256 %s, want %d %s", put.Size, put.SHA256, size, wantSum)
			}

			rc, info, err := s.Get(t.Context(), key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			defer rc.Close()
			h := sha256.New()
			n, err := io.Copy(h, rc)
			if err != nil {
				t.Fatalf("reading the body: %v", err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); n != size || got != wantSum {
				t.Errorf("Get streamed %d bytes with sha256 %s, want %d %s", n, got, size, wantSum)
			}
			if info.Size != size || info.SHA256 != wantSum {
				t.Errorf("Get info = size %d sha256 %s, want %d %s", info.Size, info.SHA256, size, wantSum)
			}
		})
	}
}

func testConcurrent(t *testing.T, s blob.Store) {
	const objects, workers = 32, 8
	bodies := make([][]byte, objects)
	for i := range bodies {
		bodies[i] = randomBytes(uint64(100+i), 50_000+i)
	}
	key := func(i int) string { return fmt.Sprintf("concurrent/%02d", i) }

	// Each worker puts its share, then every worker reads every object, so reads race
	// with other workers' writes in the first phase and with each other in the second.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < objects; i += workers {
				info, err := s.Put(t.Context(), key(i), bytes.NewReader(bodies[i]), int64(len(bodies[i])), "image/png")
				if err != nil {
					t.Errorf("Put(%s): %v", key(i), err)
					continue
				}
				if info.SHA256 != sum(bodies[i]) {
					t.Errorf("Put(%s) sha256 = %s, want %s", key(i), info.SHA256, sum(bodies[i]))
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range workers {
		wg.Go(func() {
			for j := range objects {
				i := (j + w*objects/workers) % objects
				rc, info, err := s.Get(t.Context(), key(i))
				if err != nil {
					t.Errorf("Get(%s): %v", key(i), err)
					continue
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Errorf("reading %s: %v", key(i), err)
					continue
				}
				if !bytes.Equal(got, bodies[i]) || info.SHA256 != sum(bodies[i]) {
					t.Errorf("Get(%s) returned %d bytes / sha256 %s, want %d / %s",
						key(i), len(got), info.SHA256, len(bodies[i]), sum(bodies[i]))
				}
			}
		})
	}
	wg.Wait()

	list, err := s.List(t.Context(), "concurrent/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != objects {
		t.Errorf("List found %d objects, want %d", len(list), objects)
	}
}

func testShortReader(t *testing.T, s blob.Store) {
	data := randomBytes(3, 1000)
	_, err := s.Put(t.Context(), "short/key", onlyReader{bytes.NewReader(data)}, 2000, "image/png")
	if err == nil {
		t.Fatal("Put of 1000 bytes declared as 2000 succeeded")
	}
	if _, err := s.Stat(t.Context(), "short/key"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after the failed Put: err = %v, want ErrNotFound", err)
	}
}

func testCancelledContext(t *testing.T, s blob.Store) {
	mustPut(t, s, "cancel/existing", []byte("data"), "text/plain")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	ops := []struct {
		name string
		call func() error
	}{
		{"put", func() error {
			_, err := s.Put(ctx, "cancel/new", bytes.NewReader([]byte("data")), 4, "text/plain")
			return err
		}},
		{"get", func() error {
			rc, _, err := s.Get(ctx, "cancel/existing")
			if err == nil {
				// A lazy backend may fail on the first read instead.
				_, err = io.ReadAll(rc)
				rc.Close()
			}
			return err
		}},
		{"stat", func() error { _, err := s.Stat(ctx, "cancel/existing"); return err }},
		{"list", func() error { _, err := s.List(ctx, "cancel/"); return err }},
		{"delete", func() error { return s.Delete(ctx, "cancel/existing") }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.call()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: err = %v, want errors.Is(err, context.Canceled)", op.name, err)
			}
		})
	}
	if _, err := s.Stat(t.Context(), "cancel/new"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a Put with a cancelled context stored an object: Stat err = %v", err)
	}
}

func testCancelMidStream(t *testing.T, s blob.Store) {
	for _, declared := range []int64{4 << 20, -1} {
		t.Run(fmt.Sprintf("declared size %d", declared), func(t *testing.T) {
			key := fmt.Sprintf("midstream/%d", declared)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// The reader cancels after its first MiB and then keeps producing data, as a
			// client upload would while the job is being abandoned.
			r := &cancellingReader{r: io.LimitReader(rand.NewChaCha8(seed(9)), 4<<20), after: 1 << 20, cancel: cancel}
			_, err := s.Put(ctx, key, r, declared, "application/octet-stream")
			if err == nil {
				t.Fatal("Put whose context was cancelled mid-stream succeeded")
			}
			if _, err := s.Stat(t.Context(), key); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Stat after the cancelled Put: err = %v, want ErrNotFound", err)
			}
		})
	}
}

type cancellingReader struct {
	r      io.Reader
	read   int
	after  int
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}

// onlyReader hides every method but Read, to exercise a backend's streaming path.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func mustPut(t *testing.T, s blob.Store, key string, data []byte, contentType string) blob.Info {
	t.Helper()
	info, err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func get(t *testing.T, s blob.Store, key string) ([]byte, blob.Info) {
	t.Helper()
	rc, info, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return data, info
}

// checkInfo compares info with what was stored; an empty contentType is not checked
// (List need not report it).
func checkInfo(t *testing.T, op string, info blob.Info, key string, data []byte, contentType string) {
	t.Helper()
	if info.Key != key {
		t.Errorf("%s: Key = %q, want %q", op, info.Key, key)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("%s(%q): Size = %d, want %d", op, key, info.Size, len(data))
	}
	if want := sum(data); info.SHA256 != want {
		t.Errorf("%s(%q): SHA256 = %q, want %q", op, key, info.SHA256, want)
	}
	if contentType != "" && info.ContentType != contentType {
		t.Errorf("%s(%q): ContentType = %q, want %q", op, key, info.ContentType, contentType)
	}
	if info.ModTime.IsZero() {
		t.Errorf("%s(%q): ModTime is zero", op, key)
	}
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

func seed(n uint64) [32]byte {
	var s [32]byte
	s[0], s[1] = byte(n), byte(n>>8)
	return s
}

// randomBytes returns incompressible bytes, so a compressing backend cannot hide a bug.
func randomBytes(n uint64, size int) []byte {
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(seed(n)).Read(b)
	return b
}
