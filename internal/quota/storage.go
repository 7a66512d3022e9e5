package quota

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// BucketStorage: "<tenant>" -> StorageUsage, the bytes a tenant has in the object store.
const BucketStorage = "storage"

// DefaultStorageQuota is the bytes one tenant may keep stored (inputs, results,
// uploads) unless --storage-quota or a per-tenant override says otherwise.
const DefaultStorageQuota int64 = 10 << 30

// DefaultStorageRecount is how old a tenant's counted usage may grow before the next
// admission counts it again from the object store.
const DefaultStorageRecount = time.Minute

// ErrStorageQuota: the tenant's stored objects reached its storage quota.
var ErrStorageQuota = errors.New("quota: storage quota exhausted")

// StoragePrefixes are the object-store prefixes that hold what a tenant stores and
// its quota counts: job inputs, job results and presigned uploads. Intermediate
// artifacts (work/<job>/) are deleted when their job ends and are not counted.
func StoragePrefixes(tenant string) []string {
	return []string{"inputs/" + tenant + "/", "results/" + tenant + "/", schemas.UploadPrefix + tenant + "/"}
}

// StorageUsage is a tenant's bytes in the object store: Counted by listing its
// prefixes at CountedAt, plus Reserved, the inputs and uploads admitted since.
type StorageUsage struct {
	Counted   int64     `json:"counted"`
	Objects   int       `json:"objects"`
	Reserved  int64     `json:"reserved"`
	CountedAt time.Time `json:"counted_at"`
}

// Bytes is the usage the quota is checked against.
func (u StorageUsage) Bytes() int64 { return u.Counted + u.Reserved }

// StorageExceeded is the refusal of a request that would take a tenant past its
// storage quota.
type StorageExceeded struct {
	Tenant        string
	Limit, Used   int64
	Adding        int64
	Objects       int
	CountedAt     time.Time
	PerTenantRule bool // the limit is the tenant's own override
}

func (e *StorageExceeded) Error() string {
	return fmt.Sprintf("tenant %s stores %s in %d objects; storing %s more would pass its storage quota of %s: delete results or erase users' data you no longer need (usage is recounted at most a minute after deletions)",
		e.Tenant, HumanBytes(e.Used), e.Objects, HumanBytes(e.Adding), HumanBytes(e.Limit))
}

// Unwrap makes errors.Is(err, ErrStorageQuota) work.
func (e *StorageExceeded) Unwrap() error { return ErrStorageQuota }

// Code is the stable problem code: storage_quota_exceeded.
func (e *StorageExceeded) Code() string { return "storage_quota_exceeded" }

// StorageLimits is the storage quota per tenant: Default, or the tenant's entry in
// Tenants. 0 means no quota. Read-only once built.
type StorageLimits struct {
	Default int64
	Tenants map[string]int64
	// Recount is how old counted usage may grow (DefaultStorageRecount when 0; a
	// negative value counts at every check, for tests).
	Recount time.Duration

	envErr error
}

// For returns tenant's quota in bytes and whether it is the tenant's own.
func (l StorageLimits) For(tenant string) (int64, bool) {
	if n, ok := l.Tenants[tenant]; ok {
		return n, true
	}
	return l.Default, false
}

// Validate reports a negative quota or a malformed environment value.
func (l StorageLimits) Validate() error {
	if l.envErr != nil {
		return l.envErr
	}
	if l.Default < 0 {
		return errors.New("quota: --storage-quota must not be negative (0 means no quota)")
	}
	for t, n := range l.Tenants {
		if n < 0 {
			return fmt.Errorf("quota: --storage-quota-tenants: %s must not be negative", t)
		}
	}
	return nil
}

// RegisterFlags adds --storage-quota and --storage-quota-tenants with defaults from
// STUDIO_STORAGE_QUOTA and STUDIO_STORAGE_QUOTA_TENANTS; Validate reports a malformed
// environment value.
func (l *StorageLimits) RegisterFlags(fs *flag.FlagSet) {
	l.Default = DefaultStorageQuota
	if v := os.Getenv("STUDIO_STORAGE_QUOTA"); v != "" {
		n, err := ParseBytes(v)
		if err != nil {
			l.envErr = fmt.Errorf("STUDIO_STORAGE_QUOTA: %w", err)
		}
		l.Default = n
	}
	fs.Func("storage-quota", "bytes one tenant may keep stored (inputs, results, uploads), e.g. 10GiB; 0 disables; more answers 403 storage_quota_exceeded [STUDIO_STORAGE_QUOTA] (default 10GiB)", func(s string) error {
		n, err := ParseBytes(s)
		l.Default = n
		return err
	})
	set := func(s string) error {
		m, err := ParseTenantBytes(s)
		if err != nil {
			return err
		}
		if l.Tenants == nil {
			l.Tenants = map[string]int64{}
		}
		for t, n := range m {
			l.Tenants[t] = n
		}
		return nil
	}
	if v := os.Getenv("STUDIO_STORAGE_QUOTA_TENANTS"); v != "" {
		if err := set(v); err != nil && l.envErr == nil {
			l.envErr = fmt.Errorf("STUDIO_STORAGE_QUOTA_TENANTS: %w", err)
		}
	}
	fs.Func("storage-quota-tenants", "per-tenant --storage-quota, e.g. acme=100GiB,trial=1GiB [STUDIO_STORAGE_QUOTA_TENANTS]", set)
}

// ParseTenantBytes reads "acme=100GiB,trial=1GiB".
func ParseTenantBytes(s string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("quota: %q: want tenant=size, e.g. acme=100GiB", part)
		}
		name = strings.TrimSpace(name)
		if err := schemas.ValidToken(name); err != nil {
			return nil, fmt.Errorf("quota: %q: tenant %w", part, err)
		}
		n, err := ParseBytes(val)
		if err != nil {
			return nil, fmt.Errorf("quota: %q: %w", part, err)
		}
		out[name] = n
	}
	return out, nil
}

// ParseBytes reads a byte count with an optional unit: 512, 64KiB, 10MiB, 10GiB, 1TiB
// (also KB, MB, GB, TB as powers of 1000).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (want e.g. 10GiB or 1048576)", s)
	}
	return n * mult, nil
}

// HumanBytes writes n with a binary unit.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Storage enforces the per-tenant storage quota. The object store is the ledger: a
// tenant's usage is the sum of the sizes listed under its StoragePrefixes. The KV
// bucket "storage" keeps that sum per tenant, counted at most Recount ago, plus the
// bytes admitted since (Reserve), so that a check costs one KV read and the listing
// runs once a minute per tenant, not per request. Because every count replaces the
// kept value with what the store holds, nothing can make the usage drift for longer
// than Recount: a redelivered store stage rewrites the same key (one object, counted
// once), erasure and retention delete objects (gone from the next count), and a job
// that failed after its input was reserved is counted as whatever it left behind.
// Forget drops a tenant's value so that the next check counts at once (after an
// erasure). Safe for concurrent use, across replicas (CAS updates).
type Storage struct {
	kv     jetstream.KeyValue
	blobs  blob.Store
	limits StorageLimits
	now    func() time.Time
}

// OpenStorage opens the storage bucket over blobs with limits.
func OpenStorage(ctx context.Context, js jetstream.JetStream, blobs blob.Store, limits StorageLimits) (*Storage, error) {
	kv, err := streams.BindKV(ctx, js, BucketStorage)
	if err != nil {
		return nil, err
	}
	if limits.Recount == 0 {
		limits.Recount = DefaultStorageRecount
	}
	return &Storage{kv: kv, blobs: blobs, limits: limits, now: time.Now}, nil
}

// Limits returns the quota policy.
func (s *Storage) Limits() StorageLimits { return s.limits }

// Usage returns tenant's usage, counting it from the object store first when the kept
// count is missing or older than Recount.
func (s *Storage) Usage(ctx context.Context, tenant string) (StorageUsage, error) {
	return streams.UpdateJSON(ctx, s.kv, tenant, func(u *StorageUsage, exists bool) error {
		if exists && s.limits.Recount > 0 && s.now().Sub(u.CountedAt) < s.limits.Recount {
			return streams.ErrNoChange
		}
		fresh, err := s.count(ctx, tenant)
		if err != nil {
			return err
		}
		*u = fresh
		return nil
	})
}

// Check returns a *StorageExceeded when storing adding more bytes would take tenant
// past its quota; nil when it fits or the tenant has no quota.
func (s *Storage) Check(ctx context.Context, tenant string, adding int64) error {
	limit, own := s.limits.For(tenant)
	if limit <= 0 {
		return nil
	}
	u, err := s.Usage(ctx, tenant)
	if err != nil {
		return err
	}
	if u.Bytes()+adding > limit {
		return &StorageExceeded{Tenant: tenant, Limit: limit, Used: u.Bytes(), Adding: adding, Objects: u.Objects, CountedAt: u.CountedAt, PerTenantRule: own}
	}
	return nil
}

// Reserve adds n bytes just stored for tenant to its kept usage, until the next count
// replaces it. Without a kept usage there is nothing to add to: the next check counts.
func (s *Storage) Reserve(ctx context.Context, tenant string, n int64) error {
	_, err := streams.UpdateJSON(ctx, s.kv, tenant, func(u *StorageUsage, exists bool) error {
		if !exists {
			return streams.ErrNoChange
		}
		u.Reserved += n
		return nil
	})
	return err
}

// Forget drops tenant's kept usage, so that the next check counts it from the store.
func (s *Storage) Forget(ctx context.Context, tenant string) error {
	if err := s.kv.Delete(ctx, tenant); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget storage usage of %s: %w", tenant, err)
	}
	return nil
}

// count lists tenant's prefixes.
func (s *Storage) count(ctx context.Context, tenant string) (StorageUsage, error) {
	u := StorageUsage{CountedAt: s.now().UTC()}
	for _, p := range StoragePrefixes(tenant) {
		objs, err := s.blobs.List(ctx, p)
		if err != nil {
			return StorageUsage{}, fmt.Errorf("count storage of %s: %w", tenant, err)
		}
		for _, o := range objs {
			u.Counted += o.Size
			u.Objects++
		}
	}
	return u, nil
}
