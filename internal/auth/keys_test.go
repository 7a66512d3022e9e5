package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/creativeai-studio/studio/internal/auth"
)

func TestParseKeySet(t *testing.T) {
	ed, _ := auth.GenerateKey("new", auth.EdDSA)
	hs, _ := auth.GenerateKey("old", auth.HS256)
	tests := []struct {
		name       string
		spec       string
		wantActive string
		wantErr    string
	}{
		{name: "the first key signs and the others verify", spec: ed.String() + "," + hs.String(), wantActive: "new"},
		{name: "newlines and comments are accepted", spec: "# keys\n" + hs.String() + "\n" + ed.String() + "\n", wantActive: "old"},
		{name: "an empty spec is refused", spec: " ", wantErr: "no signing keys"},
		{name: "an unknown algorithm is refused", spec: "k1:RS256:AAAA", wantErr: "unknown algorithm"},
		{name: "a short HMAC secret is refused", spec: "k1:HS256:c2hvcnQ", wantErr: "want at least 32"},
		{name: "a wrong-size Ed25519 seed is refused", spec: "k1:EdDSA:c2hvcnQ", wantErr: "want 32"},
		{name: "a repeated key id is refused", spec: hs.String() + "," + hs.String(), wantErr: "appears twice"},
		{name: "an entry without material is refused without echoing it", spec: "k1-HS256", wantErr: "want kid:alg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := auth.ParseKeySet(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ks.Active().ID != tc.wantActive {
				t.Fatalf("active key %s, want %s", ks.Active().ID, tc.wantActive)
			}
			again, err := auth.ParseKeySet(ks.String())
			if err != nil || again.Active().ID != tc.wantActive {
				t.Fatalf("String() does not round-trip: %v", err)
			}
		})
	}
}

func TestLoadOrCreateKeyFileAgreesAcrossConcurrentCallers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth", "jwt-keys")
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ks, err := auth.LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = ks.Active().String()
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatal("callers ended up with different keys")
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	ks, err := auth.LoadOrCreateKeyFile(path)
	if err != nil || ks.Active().String() != ids[0] {
		t.Fatalf("reloading gave another key (%v)", err)
	}
}
