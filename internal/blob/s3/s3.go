// Package s3 stores blobs in a bucket of any S3 API server (AWS S3, Ceph RGW, SeaweedFS,
// versitygw, MinIO) through minio-go. It uses only the plain S3 API: no MinIO
// extensions, so a deployment can move between servers.
package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/creativeai-studio/studio/internal/blob"
)

// ErrDigestMismatch is returned (wrapped) by a Get body's final Read when the content
// does not match the SHA-256 recorded at Put: the object was changed behind our back or
// corrupted. It is permanent; retrying will not help.
var ErrDigestMismatch = errors.New("s3: object content does not match its recorded sha256")

// metaSHA256 is the user metadata key holding the content's lower-case hex SHA-256; on
// the wire it is the x-amz-meta-sha256 header.
const metaSHA256 = "sha256"

// statConcurrency bounds the HEAD requests List makes to fill in each object's Info.
const statConcurrency = 8

var _ blob.Store = (*Store)(nil)

// Store is a blob.Store backed by one S3 bucket. It is safe for concurrent use; every
// method blocks on network round trips and returns early when ctx is done.
type Store struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	endpoint string
	partSize uint64
	spoolDir string // "" means os.TempDir
	retryFor time.Duration
}

// New connects to cfg.Endpoint and checks that cfg.Bucket exists, creating it when
// cfg.CreateBucket is set. It makes one or two requests and blocks until they finish;
// while the server is unavailable it tries again for up to cfg.RetryFor.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	if cfg.AccessKey == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.IAM{},
		})
	}
	opts := &minio.Options{
		Creds:  creds,
		Secure: cfg.UseTLS,
		Region: cfg.Region,
	}
	if cfg.RetryFor > 0 {
		// Store.retry waits out an outage: each of its tries is one request, so that a
		// ctx ending during the outage ends in our wait, where it is known to be the
		// store's fault, not in minio-go's own retries (about 10 over a few seconds).
		opts.MaxRetries = 1
	}
	client, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3: client for %s: %w", cfg.Endpoint, err)
	}
	s := &Store{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   cfg.Bucket,
		endpoint: cfg.Endpoint,
		partSize: cfg.PartSize,
		retryFor: cfg.RetryFor,
	}

	// A server that is starting (or restarting beside us) is waited for like any
	// other outage, up to RetryFor.
	var exists bool
	err = s.retry(ctx, func() error {
		var err error
		exists, err = client.BucketExists(ctx, cfg.Bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("s3: checking bucket %q at %s (check Endpoint, UseTLS and credentials): %w",
			cfg.Bucket, s.url(), err)
	}
	if exists {
		return s, nil
	}
	if !cfg.CreateBucket {
		return nil, fmt.Errorf("s3: bucket %q does not exist at %s; create it or set CreateBucket", cfg.Bucket, s.url())
	}
	err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
	// Another replica starting at the same moment may have won the race.
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return nil, fmt.Errorf("s3: creating bucket %q at %s: %w", cfg.Bucket, s.url(), err)
	}
	return s, nil
}

// Bucket returns the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// Put stores r under key. It reads the whole body before uploading, to record its
// SHA-256 with the object (see spool.go), so the upload starts only once r is drained.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (blob.Info, error) {
	if key == "" {
		return blob.Info{}, errors.New("s3: put: empty key")
	}
	b, err := spool(ctx, r, size, s.spoolDir)
	if err != nil {
		return blob.Info{}, s.wrap(ctx, "put", key, err)
	}
	defer b.Close()
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	// The spooled body is seekable, so a Put of the same bytes to the same key can be
	// sent again while the server is unavailable.
	var up minio.UploadInfo
	err = s.retry(ctx, func() error {
		if _, err := b.r.(io.Seeker).Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding the body: %w", err)
		}
		var err error
		up, err = s.client.PutObject(ctx, s.bucket, key, b.r, b.size, minio.PutObjectOptions{
			ContentType:  contentType,
			UserMetadata: map[string]string{metaSHA256: b.sha256},
			PartSize:     s.partSize,
		})
		return err
	})
	if err != nil {
		return blob.Info{}, s.wrap(ctx, "put", key, err)
	}
	if up.Size != b.size {
		return blob.Info{}, fmt.Errorf("s3: put %q in bucket %q: server stored %d bytes, sent %d", key, s.bucket, up.Size, b.size)
	}
	// A single-part PUT response carries no Last-Modified; our clock is close enough
	// for an object that did not exist a moment ago.
	modTime := up.LastModified
	if modTime.IsZero() {
		modTime = time.Now().UTC()
	}
	return blob.Info{Key: key, Size: b.size, SHA256: b.sha256, ContentType: contentType, ModTime: modTime}, nil
}

// Get opens key with one GET request. The body checks the content against the recorded
// SHA-256 as it is read and fails the final Read with ErrDigestMismatch if they differ;
// objects written by other tools, without a recorded digest, are not checked.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	var rc io.ReadCloser
	var oi minio.ObjectInfo
	err := s.retry(ctx, func() error {
		var err error
		rc, oi, _, err = s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
		return err
	})
	if err != nil {
		return nil, blob.Info{}, s.wrap(ctx, "get", key, err)
	}
	info := toInfo(oi)
	return &verifyingReader{rc: rc, key: key, want: info.SHA256, size: info.Size, h: sha256.New()}, info, nil
}

// Stat returns key's Info with one HEAD request.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	var oi minio.ObjectInfo
	err := s.retry(ctx, func() error {
		var err error
		oi, err = s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return blob.Info{}, s.wrap(ctx, "stat", key, err)
	}
	return toInfo(oi), nil
}

// Delete removes key; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.retry(ctx, func() error {
		return s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{})
	})
	if err != nil && !isNotFound(err) {
		return s.wrap(ctx, "delete", key, err)
	}
	return nil
}

// Purge is Delete: an unversioned bucket keeps no record of a deleted key. (On a
// versioned bucket the old versions stay; use a lifecycle rule that expires them.)
func (s *Store) Purge(ctx context.Context, key string) error { return s.Delete(ctx, key) }

// Keys lists the keys under each prefix with one listing per prefix and no HEAD
// requests, so it is cheap where List is not.
func (s *Store) Keys(ctx context.Context, prefixes ...string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, prefix := range prefixes {
		for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				return nil, s.wrap(ctx, "list", prefix, oi.Err)
			}
			if !seen[oi.Key] {
				seen[oi.Key] = true
				out = append(out, oi.Key)
			}
		}
		// minio-go ends the listing silently when ctx is done.
		if err := ctx.Err(); err != nil {
			return nil, s.wrap(ctx, "list", prefix, err)
		}
	}
	return out, nil
}

// List returns every object whose key starts with prefix, sorted by key. The S3 listing
// carries neither content type nor user metadata, so List sends one HEAD per object
// (statConcurrency at a time): use it for housekeeping, not on a hot path. An object
// deleted between the listing and its HEAD is left out.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	var keys []string
	for oi := range s.client.ListObjectsIter(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, s.wrap(ctx, "list", prefix, oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	// minio-go ends the listing silently when ctx is done: without this check a
	// cancelled List would return a truncated result as if it were complete.
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(ctx, "list", prefix, err)
	}

	infos := make([]blob.Info, len(keys))
	found := make([]bool, len(keys))
	errs := make([]error, len(keys))
	sem := make(chan struct{}, statConcurrency)
	var wg sync.WaitGroup
	for i, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			info, err := s.Stat(ctx, key)
			switch {
			case err == nil:
				infos[i], found[i] = info, true
			case !errors.Is(err, blob.ErrNotFound):
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("s3: list %q in bucket %q: %w", prefix, s.bucket, err)
	}
	out := infos[:0]
	for i, info := range infos {
		if found[i] {
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

func (s *Store) url() string {
	if s.client.EndpointURL() != nil {
		return s.client.EndpointURL().String()
	}
	return s.endpoint
}

// wrap adds the operation, key and bucket to err, turns a missing key into
// blob.ErrNotFound and makes sure a cancelled or expired ctx is visible to errors.Is
// (minio-go sometimes reports it as a plain transport error).
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3: %s %q in bucket %q: %w", op, key, s.bucket, blob.ErrNotFound)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("s3: %s %q in bucket %q at %s: %w (%w)", op, key, s.bucket, s.url(), ctxErr, err)
	}
	return fmt.Errorf("s3: %s %q in bucket %q at %s: %w", op, key, s.bucket, s.url(), err)
}

// isNotFound reports a missing key. A HEAD response has no body, so minio-go invents
// the code from the status; a missing bucket on HEAD therefore looks like a missing key,
// but New has checked the bucket.
func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey ||
		(resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket)
}

func toInfo(oi minio.ObjectInfo) blob.Info {
	return blob.Info{
		Key:         oi.Key,
		Size:        oi.Size,
		SHA256:      recordedSHA256(oi),
		ContentType: oi.ContentType,
		ModTime:     oi.LastModified,
	}
}

// recordedSHA256 returns the digest Put recorded, or "" for an object written by
// something else (or with a malformed value, which is better ignored than trusted).
func recordedSHA256(oi minio.ObjectInfo) string {
	v := strings.ToLower(oi.Metadata.Get("X-Amz-Meta-" + metaSHA256))
	if len(v) != sha256.Size*2 {
		return ""
	}
	if _, err := hex.DecodeString(v); err != nil {
		return ""
	}
	return v
}

// verifyingReader hashes a Get body as it is read and checks it at EOF.
type verifyingReader struct {
	rc   io.ReadCloser
	key  string
	want string // "" skips the check
	size int64
	h    hash.Hash
	n    int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if v.n != v.size {
			return n, fmt.Errorf("s3: get %q: body ended after %d of %d bytes: %w", v.key, v.n, v.size, io.ErrUnexpectedEOF)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); v.want != "" && got != v.want {
			return n, fmt.Errorf("%w: %q has sha256 %s, recorded %s", ErrDigestMismatch, v.key, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }
