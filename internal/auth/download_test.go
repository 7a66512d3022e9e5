package auth_test

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/auth"
)

func TestDownloadSigner(t *testing.T) {
	oldSecret, newSecret := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	signer, err := auth.NewDownloadSigner("https://studio.test/", newSecret, oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	oldSigner, _ := auth.NewDownloadSigner("https://studio.test", oldSecret)
	key := "results/acme/01jobid/cutout.png"
	parse := func(t *testing.T, s *auth.DownloadSigner, key string, ttl time.Duration) (path, exp, sig string) {
		t.Helper()
		raw, err := s.PresignGet(context.Background(), key, ttl)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Path, u.Query().Get("exp"), u.Query().Get("sig")
	}
	path, exp, sig := parse(t, signer, key, time.Minute)
	if path != auth.DownloadPath+key {
		t.Fatalf("path %q, want %q", path, auth.DownloadPath+key)
	}
	_, oexp, osig := parse(t, oldSigner, key, time.Minute)
	_, sexp, ssig := parse(t, signer, key, time.Second)

	tests := []struct {
		name          string
		key, exp, sig string
		wait          time.Duration
		want          error
	}{
		{name: "a fresh URL verifies", key: key, exp: exp, sig: sig},
		{name: "a URL signed with the previous secret still verifies", key: key, exp: oexp, sig: osig},
		{name: "the signature does not open another key", key: "results/other/01jobid/cutout.png", exp: exp, sig: sig, want: auth.ErrBadSignature},
		{name: "a later expiry invalidates the signature", key: key, exp: exp + "0", sig: sig, want: auth.ErrBadSignature},
		{name: "a tampered signature is refused", key: key, exp: exp, sig: strings.Repeat("A", len(sig)), want: auth.ErrBadSignature},
		{name: "an expired URL is refused", key: key, exp: sexp, sig: ssig, wait: 2 * time.Second, want: auth.ErrURLExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.wait > 0 {
				deadline := time.Now().Add(5 * time.Second)
				for signer.Verify(tc.key, tc.exp, tc.sig) == nil && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if err := signer.Verify(tc.key, tc.exp, tc.sig); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := signer.PresignGet(context.Background(), key, 2*time.Hour); err == nil {
		t.Fatal("a URL living two hours was signed")
	}
}
