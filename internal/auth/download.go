package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/blob"
)

// Download URL errors; both mean 403 (or 404, to hide that the object exists).
var (
	ErrBadSignature = errors.New("auth: download signature does not match")
	ErrURLExpired   = errors.New("auth: download URL expired")
)

// DownloadPath is the route a signed download URL points at; the object key follows.
const DownloadPath = "/v1/objects/"

// MaxDownloadExpiry is the longest lifetime a signed URL may have.
const MaxDownloadExpiry = time.Hour

// DownloadSigner hands out short-lived URLs for one object key each, for the JetStream
// object store backend (S3 signs its own: blob/s3 implements blob.URLSigner with
// presigned GETs). The URL carries exp (Unix seconds) and sig, an HMAC-SHA256 over the
// key and exp. Anyone holding the URL may fetch that one object until it expires, so
// the API hands it out only after checking the caller's tenant. Safe for concurrent
// use.
type DownloadSigner struct {
	base    string
	secrets [][]byte
	now     func() time.Time
}

var _ blob.URLSigner = (*DownloadSigner)(nil)

// NewDownloadSigner returns a signer for URLs under baseURL (e.g.
// "https://studio.example.com"). The first secret signs; all verify, so a secret can be
// rotated by putting a new one first. Secrets must be at least 32 bytes.
func NewDownloadSigner(baseURL string, secrets ...[]byte) (*DownloadSigner, error) {
	if len(secrets) == 0 {
		return nil, errors.New("auth: download signer needs a secret")
	}
	for i, s := range secrets {
		if len(s) < MinHMACSecret {
			return nil, fmt.Errorf("auth: download secret %d is %d bytes, want at least %d", i, len(s), MinHMACSecret)
		}
	}
	return &DownloadSigner{base: strings.TrimRight(baseURL, "/"), secrets: secrets, now: time.Now}, nil
}

// PresignGet returns an absolute URL for key valid for expiry (at most
// MaxDownloadExpiry).
func (s *DownloadSigner) PresignGet(_ context.Context, key string, expiry time.Duration) (string, error) {
	if expiry <= 0 || expiry > MaxDownloadExpiry {
		return "", fmt.Errorf("auth: download URL lifetime %s: want up to %s", expiry, MaxDownloadExpiry)
	}
	if key == "" || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("auth: cannot sign object key %q", key)
	}
	exp := s.now().Add(expiry).Unix()
	q := url.Values{"exp": {strconv.FormatInt(exp, 10)}, "sig": {s.mac(s.secrets[0], key, exp)}}
	return s.base + DownloadPath + escapeKey(key) + "?" + q.Encode(), nil
}

// Verify checks the exp and sig query values presented for key.
func (s *DownloadSigner) Verify(key, exp, sig string) error {
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: exp %q is not a number", ErrBadSignature, exp)
	}
	ok := false
	for _, secret := range s.secrets {
		// hmac.Equal is constant-time; every secret is tried so timing reveals nothing.
		if hmac.Equal([]byte(s.mac(secret, key, e)), []byte(sig)) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	if !s.now().Before(time.Unix(e, 0)) {
		return ErrURLExpired
	}
	return nil
}

func (s *DownloadSigner) mac(secret []byte, key string, exp int64) string {
	m := hmac.New(sha256.New, secret)
	// The domain prefix keeps these MACs from being valid anywhere else the secret is
	// used; the NUL separates the key from exp unambiguously.
	fmt.Fprintf(m, "studio-download/v1\x00%s\x00%d", key, exp)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// escapeKey escapes each path segment of an object key.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
