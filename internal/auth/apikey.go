package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// API key errors. All of them wrap ErrInvalidKey (answer 401) except ErrKeyNotFound
// from management calls.
var (
	ErrInvalidKey  = errors.New("auth: invalid API key")
	ErrKeyRevoked  = errors.New("auth: API key revoked")
	ErrKeyExpired  = errors.New("auth: API key expired")
	ErrKeyNotFound = errors.New("auth: API key not found")
)

// APIKeyPrefix starts every API key, so that a leaked key is recognisable (secret
// scanners) and the HTTP layer can tell it from a JWT.
const APIKeyPrefix = "csk_"

// An API key reads "csk_<id>_<secret>". The id (16 characters, 80 random bits) is the
// lookup handle and is shown in listings; the secret (32 random bytes) is shown once at
// creation and stored only as its SHA-256. A fast hash is right here: the secret has
// 256 bits of entropy, so there is nothing to brute-force, and a slow hash would only
// cost every request.
const (
	keyIDLen     = 16
	keySecretLen = 32
)

// APIKey is the stored record of a key for a third-party program. It belongs to a tenant
// and acts for its Owner, a user of that tenant.
type APIKey struct {
	ID     string       `json:"id"`
	Tenant string       `json:"tenant"`
	Owner  string       `json:"owner"`
	Name   string       `json:"name,omitempty"`
	Scopes []Scope      `json:"scopes"`
	Tier   schemas.Tier `json:"tier"`
	// Hash is the lower-case hex SHA-256 of the secret.
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is optional; zero means the key does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// DailyQuota caps requests per UTC day; 0 means no cap. Usage is counted either way.
	DailyQuota int `json:"daily_quota,omitempty"`
	// Parent is the id of the key that minted this one (empty for a key a person made).
	// A child never holds more scopes, a later expiry or a larger quota than its
	// parent, and stops working when any ancestor is revoked or expires.
	Parent string `json:"parent,omitempty"`
}

// MaxKeyDepth bounds a chain of keys minted by keys (a person's key is depth 1), so
// that checking a key's ancestry costs a bounded number of reads.
const MaxKeyDepth = 4

// ChildKeyTerms returns the scopes, expiry and daily quota a key minted by parent may
// have, given what the caller asked for (zero expiry and quota: "as long and as much as
// the parent allows"). It refuses, wrapping ErrForbidden, a scope the parent lacks, an
// expiry after the parent's, or a quota above the parent's: a key never out-scopes,
// outlives or out-spends the key that made it.
func ChildKeyTerms(parent *APIKey, scopes []Scope, expires time.Time, dailyQuota int) (time.Time, int, error) {
	held := parent.Principal()
	for _, s := range scopes {
		if !slices.Contains(held.Scopes, s) {
			return time.Time{}, 0, fmt.Errorf("%w: key %s does not hold %s, so it cannot grant it", ErrForbidden, parent.ID, s)
		}
	}
	if !parent.ExpiresAt.IsZero() {
		switch {
		case expires.IsZero():
			expires = parent.ExpiresAt
		case expires.After(parent.ExpiresAt):
			return time.Time{}, 0, fmt.Errorf("%w: key %s expires at %s; a key it mints cannot outlive it", ErrForbidden, parent.ID, parent.ExpiresAt.Format(time.RFC3339))
		}
	}
	if parent.DailyQuota > 0 {
		switch {
		case dailyQuota == 0:
			dailyQuota = parent.DailyQuota
		case dailyQuota > parent.DailyQuota:
			return time.Time{}, 0, fmt.Errorf("%w: key %s may make %d requests a day; a key it mints cannot have more", ErrForbidden, parent.ID, parent.DailyQuota)
		}
	}
	return expires, dailyQuota, nil
}

// NewAPIKey makes a key for owner with a fresh secret and returns the record to store
// and the full key to hand to the client (once: it cannot be recovered).
func NewAPIKey(tenant, owner, name string, tier schemas.Tier, scopes []Scope, expires time.Time, dailyQuota int, now time.Time) (*APIKey, string, error) {
	k := &APIKey{
		ID: randomString(10)[:keyIDLen], Tenant: tenant, Owner: owner, Name: name, Tier: tier,
		Scopes: scopes, CreatedAt: now.UTC(), DailyQuota: dailyQuota,
	}
	if !expires.IsZero() {
		k.ExpiresAt = expires.UTC()
	}
	if err := k.Validate(now); err != nil {
		return nil, "", err
	}
	secretBytes := make([]byte, keySecretLen)
	if _, err := rand.Read(secretBytes); err != nil {
		return nil, "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(secretBytes)
	k.Hash = hashSecret(secret)
	return k, APIKeyPrefix + k.ID + "_" + secret, nil
}

// Validate reports the first problem that makes k unstorable.
func (k *APIKey) Validate(now time.Time) error {
	if err := schemas.ValidToken(k.Tenant); err != nil {
		return fmt.Errorf("auth: API key tenant: %w", err)
	}
	if err := schemas.ValidToken(k.Owner); err != nil {
		return fmt.Errorf("auth: API key owner: %w", err)
	}
	if !k.Tier.Valid() {
		return fmt.Errorf("auth: API key tier %q is not one of premium, normal, free", k.Tier)
	}
	if len(k.Scopes) == 0 {
		return errors.New("auth: an API key needs at least one scope")
	}
	for _, s := range k.Scopes {
		if _, err := ParseScope(string(s)); err != nil {
			return err
		}
		if s == ScopeAdmin {
			return errors.New("auth: API keys cannot hold the admin scope; people administer")
		}
	}
	if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now) {
		return fmt.Errorf("auth: API key expiry %s is in the past", k.ExpiresAt.Format(time.RFC3339))
	}
	if k.DailyQuota < 0 {
		return errors.New("auth: daily quota must not be negative (0 means no cap)")
	}
	if len(k.Name) > 200 {
		return errors.New("auth: API key name is longer than 200 bytes")
	}
	return nil
}

// ParseAPIKey splits a presented key into its id and secret.
func ParseAPIKey(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, APIKeyPrefix)
	if !ok {
		return "", "", fmt.Errorf("%w: it does not start with %s", ErrInvalidKey, APIKeyPrefix)
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != keyIDLen || !isIDString(id) || len(secret) != base64.RawURLEncoding.EncodedLen(keySecretLen) {
		return "", "", fmt.Errorf("%w: malformed", ErrInvalidKey)
	}
	return id, secret, nil
}

// IsAPIKey reports whether a bearer token looks like an API key rather than a JWT.
func IsAPIKey(token string) bool { return strings.HasPrefix(token, APIKeyPrefix) }

// Check verifies a presented secret against the stored hash in constant time, then the
// key's revocation and expiry.
func (k *APIKey) Check(secret string, now time.Time) error {
	want, err := hex.DecodeString(k.Hash)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("%w: stored hash of key %s is corrupt", ErrInvalidKey, k.ID)
	}
	got := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return ErrInvalidKey
	}
	return k.usable(now)
}

// usable returns an error wrapping ErrInvalidKey and ErrKeyRevoked or ErrKeyExpired
// when k may not be used at now.
func (k *APIKey) usable(now time.Time) error {
	if !k.RevokedAt.IsZero() {
		return fmt.Errorf("%w: %w", ErrInvalidKey, ErrKeyRevoked)
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return fmt.Errorf("%w: %w", ErrInvalidKey, ErrKeyExpired)
	}
	return nil
}

// Principal returns who acts when the key is used: its owner, with the key's scopes
// and tier.
func (k *APIKey) Principal() Principal {
	return Principal{Tenant: k.Tenant, User: k.Owner, Tier: k.Tier, Scopes: append([]Scope(nil), k.Scopes...), KeyID: k.ID}
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("auth: crypto/rand failed: " + err.Error())
	}
	return idEncoding.EncodeToString(b)
}

func isIDString(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
			return false
		}
	}
	return true
}
