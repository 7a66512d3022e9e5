package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/quota"
)

// KV buckets of authentication, fairness and erasure. Keys are built from tenant and
// user ids, which are subject tokens (schemas.ValidToken), so every key is a valid KV
// key and a user's keys can be selected, and purged, with one subject filter.
const (
	// BucketUsers: "<tenant>.<user>" -> auth.User.
	BucketUsers = "users"
	// BucketAPIKeys: "<key id>" -> auth.APIKey (secrets stored as SHA-256 only).
	BucketAPIKeys = "apikeys"
	// BucketKeyUsage: "<key id>.<yyyymmdd>" -> requests that UTC day.
	BucketKeyUsage = "apikey_usage"
	// BucketRefresh: "<tenant>.<user>.<family>" -> auth.RefreshFamily.
	BucketRefresh = "refresh"
	// BucketRevoked: "jti.<id>" / "fam.<id>" -> deny-list entry with a per-key TTL.
	BucketRevoked = "revoked"
	// BucketActive: "<tenant>.<user>" -> quota.ActiveSet, the user's queued or running jobs.
	BucketActive = "active"
	// BucketRateLimit: "<tenant>.<user>" -> quota.WindowState.
	BucketRateLimit = "ratelimit"
	// BucketUserJobs: "<tenant>.<user>.<job>" -> submission time; the per-user job
	// index that erasure reads.
	BucketUserJobs = "userjobs"
)

// keyUsageMaxAge keeps per-day API key counters for a month of history.
const keyUsageMaxAge = 32 * 24 * time.Hour

// securityBuckets lists the KV buckets this file's stores use.
func (t Topology) securityBuckets() []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{
			Bucket: name, Description: desc, History: 1, TTL: ttl,
			Storage: t.Storage, Replicas: t.Replicas,
		}
	}
	revoked := kv(BucketRevoked, "deny list of token ids and token families, each kept until the token expires", auth.MaxRefreshTTL+24*time.Hour)
	// Per-key TTLs (one per denied token) need limit markers; 1 s is the server minimum
	// of the marker lifetime too.
	revoked.LimitMarkerTTL = time.Minute
	return []jetstream.KeyValueConfig{
		kv(BucketUsers, "users: tenant, tier, scopes", 0),
		kv(BucketAPIKeys, "API keys of third-party programs, secrets hashed", 0),
		// Every write restarts a key's age, so a day's counter lives 32 days after its last use.
		kv(BucketKeyUsage, "API key requests per UTC day", keyUsageMaxAge),
		// Families are rewritten at each rotation; one outlives its last refresh token.
		kv(BucketRefresh, "refresh-token families: current token, revoked flag", auth.MaxRefreshTTL+24*time.Hour),
		revoked,
		kv(BucketActive, "jobs queued or running per user (the concurrency cap)", t.JobsMaxAge),
		// A window idle for longer than it spans holds nothing that still counts.
		kv(BucketRateLimit, "sliding-window request counts per user", quota.RateWindow+quota.RateWindow/quota.RateSlots+time.Minute),
		kv(BucketUserJobs, "index: the jobs of each user, for erasure", t.JobsMaxAge),
	}
}

func (t Topology) provisionSecurity(ctx context.Context, js jetstream.JetStream) error {
	for _, cfg := range t.securityBuckets() {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("streams: provision KV bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}

// openKV opens a bucket that Provision creates.
func openKV(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("streams: open KV bucket %s (run provisioning first): %w", bucket, err)
	}
	return kv, nil
}

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

// eraseSubject removes every message of a subject (a KV key with its history and
// delete markers, or a whole key prefix with a '>' filter) from a bucket's stream, so
// that not even the key name remains. Watchers are not told; call the KV's Purge first
// where watchers matter.
func eraseSubject(ctx context.Context, js jetstream.JetStream, stream, subject string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("streams: stream %s: %w", stream, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("streams: purge %s from %s: %w", subject, stream, err)
	}
	return nil
}

// kvStream and kvSubject name a bucket's stream and one key's subject.
func kvStream(bucket string) string       { return "KV_" + bucket }
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }
