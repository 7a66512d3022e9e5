// Package blob is the object storage seam. Images and tensors live behind Store; the
// pipeline's events carry only keys, sizes and sha256 digests.
//
// Two backends implement Store: the JetStream object store (natsobj.ObjectStore, the
// embedded default) and any S3 API server through minio-go (package blob/s3).
package blob

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("blob: object not found")

// ErrUnavailable is returned (wrapped) when a call failed because the backend could not
// be reached or could not serve, and kept failing for as long as the Store retries such
// calls. It is transient: the same call may succeed later. A caller running under its
// own deadline must not blame its work for the time it spent waiting for the store.
var ErrUnavailable = errors.New("blob: object store unavailable")

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	SHA256      string // lower-case hex of the content's SHA-256
	ContentType string
	ModTime     time.Time
}

// Store keeps immutable objects by key. Implementations are safe for concurrent use.
// Put streams r to the backend and computes the SHA-256 on the way; a Put to an existing
// key replaces it. Get returns ErrNotFound for a missing key; the caller closes the
// reader. Delete of a missing key is not an error. List returns objects whose key starts
// with prefix, in no particular order.
//
// Purge and Keys are what erasure needs. They are part of Store, not optional
// interfaces, so that a wrapper (metrics.InstrumentBlobs) must forward them and cannot
// hide them:
//   - Purge deletes key and every record of it the backend keeps. The JetStream object
//     store keeps a delete marker that names the key after Delete; Purge removes it too.
//     A missing key is not an error.
//   - Keys returns the keys under any of prefixes, in no particular order and without
//     duplicates, reading no metadata: one pass over the store where the backend can
//     only list everything (the JetStream object store), one listing per prefix where it
//     lists by prefix (S3). It may also return keys of deleted objects whose record the
//     backend keeps (the object store's delete markers), so that Purge removes those.
type Store interface {
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Info, error)
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	Stat(ctx context.Context, key string) (Info, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string) ([]Info, error)
	Purge(ctx context.Context, key string) error
	Keys(ctx context.Context, prefixes ...string) ([]string, error)
}

// BytesReader is a bytes.Reader that also offers its unread bytes to a Store: one
// that keeps a small object in memory anyway (natsobj) takes them without copying the
// body again. Callers must not change the bytes until Put returns.
type BytesReader struct {
	bytes.Reader
	b []byte
}

// NewBytesReader returns a reader over b for Put.
func NewBytesReader(b []byte) *BytesReader {
	r := &BytesReader{b: b}
	r.Reset(b)
	return r
}

// Unread returns the bytes not read yet, without copying them.
func (r *BytesReader) Unread() []byte { return r.b[len(r.b)-r.Len():] }
