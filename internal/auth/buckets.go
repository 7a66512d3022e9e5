package auth

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/streams"
)

// KV buckets of authentication. Keys are built from tenant and user ids, which are
// subject tokens (schemas.ValidToken), so every key is a valid KV key and a user's
// keys can be selected, and purged, with one subject filter.
const (
	// BucketUsers: "<tenant>.<user>" -> User.
	BucketUsers = "users"
	// BucketAPIKeys: "<key id>" -> APIKey (secrets stored as SHA-256 only).
	BucketAPIKeys = "apikeys"
	// BucketKeyUsage: "<key id>.<yyyymmdd>" -> requests that UTC day.
	BucketKeyUsage = "apikey_usage"
	// BucketRefresh: "<tenant>.<user>.<family>" -> RefreshFamily.
	BucketRefresh = "refresh"
	// BucketRevoked: "jti.<id>" / "fam.<id>" -> deny-list entry with a per-key TTL.
	BucketRevoked = "revoked"
	// BucketWebhookSecrets: "<tenant>" -> WebhookGeneration, which of the tenant's
	// derived webhook signing secrets are valid.
	BucketWebhookSecrets = "webhook_secrets"
)

// keyUsageMaxAge keeps per-day API key counters for a month of history.
const keyUsageMaxAge = 32 * 24 * time.Hour

// Buckets returns the KV buckets of users and credentials, stored and replicated as t
// says.
func Buckets(t streams.Topology) []jetstream.KeyValueConfig {
	kv := func(name, desc string, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{
			Bucket: name, Description: desc, History: 1, TTL: ttl,
			Storage: t.Storage, Replicas: t.Replicas,
		}
	}
	revoked := kv(BucketRevoked, "deny list of token ids and token families, each kept until the token expires", MaxRefreshTTL+24*time.Hour)
	// Per-key TTLs (one per denied token) need limit markers; 1 s is the server minimum
	// of the marker lifetime too.
	revoked.LimitMarkerTTL = time.Minute
	return []jetstream.KeyValueConfig{
		kv(BucketUsers, "users: tenant, tier, scopes", 0),
		kv(BucketAPIKeys, "API keys of third-party programs, secrets hashed", 0),
		// Every write restarts a key's age, so a day's counter lives 32 days after its last use.
		kv(BucketKeyUsage, "API key requests per UTC day", keyUsageMaxAge),
		// Families are rewritten at each rotation; one outlives its last refresh token.
		kv(BucketRefresh, "refresh-token families: current token, revoked flag", MaxRefreshTTL+24*time.Hour),
		revoked,
		kv(BucketWebhookSecrets, "webhook secret generation per tenant (the secrets are derived, never stored)", 0),
	}
}
