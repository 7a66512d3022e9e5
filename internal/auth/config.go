package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Config holds the authentication settings of a studio process.
type Config struct {
	// JWTKeys is a key spec (see ParseKeySet); it wins over JWTKeyFile. Every ingest
	// replica must be given the same spec.
	JWTKeys string
	// JWTKeyFile is read, or created with a new EdDSA key, when JWTKeys is empty.
	JWTKeyFile string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
}

// RegisterFlags adds --jwt-keys, --jwt-key-file, --access-ttl and --refresh-ttl, with
// defaults from the STUDIO_* environment variables named in their help.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.JWTKeys, "jwt-keys", os.Getenv("STUDIO_JWT_KEYS"),
		"JWT signing keys, kid:EdDSA:<base64url seed> or kid:HS256:<base64url secret>, comma separated; the first signs [STUDIO_JWT_KEYS]")
	fs.StringVar(&c.JWTKeyFile, "jwt-key-file", os.Getenv("STUDIO_JWT_KEY_FILE"),
		"file holding the JWT keys when --jwt-keys is empty; created with a new key if missing (default <data-dir>/jwt-keys) [STUDIO_JWT_KEY_FILE]")
	fs.DurationVar(&c.AccessTTL, "access-ttl", envDuration("STUDIO_ACCESS_TTL", DefaultAccessTTL), "access token lifetime [STUDIO_ACCESS_TTL]")
	fs.DurationVar(&c.RefreshTTL, "refresh-ttl", envDuration("STUDIO_REFRESH_TTL", DefaultRefreshTTL), "refresh token lifetime, at most 168h [STUDIO_REFRESH_TTL]")
}

// Validate checks the lifetimes.
func (c *Config) Validate() error {
	if c.AccessTTL < time.Second || c.AccessTTL > time.Hour {
		return fmt.Errorf("--access-ttl %s: want 1s to 1h", c.AccessTTL)
	}
	if c.RefreshTTL < c.AccessTTL || c.RefreshTTL > MaxRefreshTTL {
		return fmt.Errorf("--refresh-ttl %s: want between --access-ttl and %s", c.RefreshTTL, MaxRefreshTTL)
	}
	return nil
}

// KeySet loads the keys: JWTKeys, else JWTKeyFile, else defaultFile (created if
// missing).
func (c *Config) KeySet(defaultFile string) (*KeySet, error) {
	if c.JWTKeys != "" {
		return ParseKeySet(c.JWTKeys)
	}
	path := c.JWTKeyFile
	if path == "" {
		path = defaultFile
	}
	return LoadOrCreateKeyFile(path)
}

// ExistingKeySet loads the keys as KeySet does but never creates a key file: a tool
// that signs for a running server (`studio users token`) must use that server's keys,
// and a token signed with a key made on the spot would be refused by it.
func (c *Config) ExistingKeySet(defaultFile string) (*KeySet, error) {
	if c.JWTKeys != "" {
		return ParseKeySet(c.JWTKeys)
	}
	path := c.JWTKeyFile
	if path == "" {
		path = defaultFile
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("auth: no JWT signing keys at %s: tokens must be signed with the running server's keys; pass the --data-dir that server uses, or its --jwt-key-file or --jwt-keys", path)
		}
		return nil, fmt.Errorf("auth: JWT key file: %w", err)
	}
	return LoadOrCreateKeyFile(path)
}

// IssuerOptions returns the lifetimes as options for NewIssuer.
func (c *Config) IssuerOptions() []IssuerOption {
	return []IssuerOption{WithAccessTTL(c.AccessTTL), WithRefreshTTL(c.RefreshTTL)}
}

// DownloadSecrets derives one download-URL secret per key of the set, active key first
// (HMAC-SHA256 of the key material with a fixed label). Replicas sharing the JWT keys
// thus share the URL secrets with nothing more to configure, rotating the JWT keys
// rotates them, and a signed URL says nothing about the JWT keys.
func (ks *KeySet) DownloadSecrets() [][]byte {
	derive := func(k Key) []byte {
		material := k.secret
		if k.Alg == EdDSA {
			material = k.private.Seed()
		}
		m := hmac.New(sha256.New, material)
		m.Write([]byte("studio download URL secret v1"))
		return m.Sum(nil)
	}
	out := [][]byte{derive(ks.active)}
	for id, k := range ks.byID {
		if id != ks.active.ID {
			out = append(out, derive(k))
		}
	}
	return out
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
