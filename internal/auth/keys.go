package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// Algorithm is a JWT signing algorithm this package accepts.
type Algorithm string

// The supported algorithms. EdDSA (Ed25519) is the default: signatures are small and
// fast, and a verifier never holds the power to sign. HS256 is kept for deployments that
// already hand out a shared secret.
const (
	EdDSA Algorithm = "EdDSA"
	HS256 Algorithm = "HS256"
)

// Key is one signing key, named by its kid. Each key has exactly one algorithm, and a
// token is only ever verified with the algorithm of the key its kid names, so a token
// cannot choose how it is checked (no "alg: none", no HS256-with-a-public-key).
type Key struct {
	ID  string
	Alg Algorithm

	secret  []byte
	private ed25519.PrivateKey
}

// MinHMACSecret is the shortest HS256 secret accepted (256 bits).
const MinHMACSecret = 32

// NewHMACKey returns an HS256 key; secret must be at least MinHMACSecret bytes.
func NewHMACKey(id string, secret []byte) (Key, error) {
	if err := schemas.ValidToken(id); err != nil {
		return Key{}, fmt.Errorf("auth: key id: %w", err)
	}
	if len(secret) < MinHMACSecret {
		return Key{}, fmt.Errorf("auth: HS256 key %s: secret is %d bytes, want at least %d", id, len(secret), MinHMACSecret)
	}
	return Key{ID: id, Alg: HS256, secret: append([]byte(nil), secret...)}, nil
}

// NewEd25519Key returns an EdDSA key from a 32-byte seed.
func NewEd25519Key(id string, seed []byte) (Key, error) {
	if err := schemas.ValidToken(id); err != nil {
		return Key{}, fmt.Errorf("auth: key id: %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("auth: EdDSA key %s: seed is %d bytes, want %d", id, len(seed), ed25519.SeedSize)
	}
	return Key{ID: id, Alg: EdDSA, private: ed25519.NewKeyFromSeed(seed)}, nil
}

// GenerateKey returns a new random key.
func GenerateKey(id string, alg Algorithm) (Key, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Key{}, err
	}
	switch alg {
	case EdDSA:
		return NewEd25519Key(id, b)
	case HS256:
		return NewHMACKey(id, b)
	}
	return Key{}, fmt.Errorf("auth: unknown algorithm %q (want EdDSA or HS256)", alg)
}

// PublicKey returns the verification key of an EdDSA key (nil for HS256).
func (k Key) PublicKey() ed25519.PublicKey {
	if k.private == nil {
		return nil
	}
	return k.private.Public().(ed25519.PublicKey)
}

// String formats k as one entry of a key spec: "kid:alg:base64url-material". It
// contains the secret.
func (k Key) String() string {
	material := k.secret
	if k.Alg == EdDSA {
		material = k.private.Seed()
	}
	return k.ID + ":" + string(k.Alg) + ":" + base64.RawURLEncoding.EncodeToString(material)
}

func (k Key) signingKey() any {
	if k.Alg == EdDSA {
		return k.private
	}
	return k.secret
}

func (k Key) verifyingKey() any {
	if k.Alg == EdDSA {
		return k.PublicKey()
	}
	return k.secret
}

// KeySet is the active signing key plus older keys still accepted for verification.
// Rotation: put a new key first (it signs from then on) and keep the old ones until the
// longest-lived token they signed has expired (the refresh TTL, 7 days). Immutable and
// safe for concurrent use.
type KeySet struct {
	active Key
	byID   map[string]Key
}

// NewKeySet returns a set signing with active and verifying with active and older.
func NewKeySet(active Key, older ...Key) (*KeySet, error) {
	ks := &KeySet{active: active, byID: map[string]Key{}}
	for _, k := range append([]Key{active}, older...) {
		if k.ID == "" || (k.secret == nil && k.private == nil) {
			return nil, errors.New("auth: key set has an empty key; build keys with NewEd25519Key, NewHMACKey or GenerateKey")
		}
		if _, dup := ks.byID[k.ID]; dup {
			return nil, fmt.Errorf("auth: key id %q appears twice", k.ID)
		}
		ks.byID[k.ID] = k
	}
	return ks, nil
}

// Active returns the signing key.
func (ks *KeySet) Active() Key { return ks.active }

// Lookup returns the key named kid.
func (ks *KeySet) Lookup(kid string) (Key, bool) {
	k, ok := ks.byID[kid]
	return k, ok
}

// String formats the set as a spec that ParseKeySet reads back (active key first). It
// contains the secrets.
func (ks *KeySet) String() string {
	parts := []string{ks.active.String()}
	for id, k := range ks.byID {
		if id != ks.active.ID {
			parts = append(parts, k.String())
		}
	}
	return strings.Join(parts, ",")
}

// ParseKeySet reads keys separated by commas or newlines, each
// "kid:EdDSA:<base64url 32-byte seed>" or "kid:HS256:<base64url secret>"; the first
// signs, the others only verify. Lines starting with # are ignored.
func ParseKeySet(spec string) (*KeySet, error) {
	var keys []Key
	for _, line := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("auth: key entry %q: want kid:alg:base64url-material", redact(line))
		}
		material, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[2], "="))
		if err != nil {
			return nil, fmt.Errorf("auth: key %s: material is not base64url: %w", parts[0], err)
		}
		var k Key
		switch Algorithm(parts[1]) {
		case EdDSA:
			k, err = NewEd25519Key(parts[0], material)
		case HS256:
			k, err = NewHMACKey(parts[0], material)
		default:
			err = fmt.Errorf("auth: key %s: unknown algorithm %q (want EdDSA or HS256)", parts[0], parts[1])
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: no signing keys given")
	}
	return NewKeySet(keys[0], keys[1:]...)
}

func redact(line string) string {
	if i := strings.LastIndexByte(line, ':'); i >= 0 {
		return line[:i+1] + "…"
	}
	if len(line) > 8 {
		return line[:8] + "…"
	}
	return line
}

// LoadOrCreateKeyFile reads a key spec from path, creating the file (mode 0600) with
// one new EdDSA key when it does not exist. It is meant for `studio up` and single-host
// setups; a fleet of ingest replicas shares one spec through --jwt-keys instead.
// Concurrent callers agree on one file: it is written aside and linked into place.
func LoadOrCreateKeyFile(path string) (*KeySet, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return ParseKeySet(string(data))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	k, err := GenerateKey("k"+time.Now().UTC().Format("20060102T150405"), EdDSA)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: key file directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jwt-keys-*")
	if err != nil {
		return nil, fmt.Errorf("auth: write key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	content := "# JWT signing keys: kid:alg:base64url. The first signs; keep older ones until 7 days after rotation.\n" + k.String() + "\n"
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("auth: write key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("auth: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("auth: install key file: %w", err)
	}
	data, err = os.ReadFile(path) // another process may have won the race
	if err != nil {
		return nil, fmt.Errorf("auth: read key file: %w", err)
	}
	return ParseKeySet(string(data))
}
